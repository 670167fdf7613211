"Tiny data for the U-Net tests: noisy images with a red or green rectangle, its mask and its colour."
import numpy as np, pandas as pd, torch
from torch import nn
import torch.nn.functional as F
from fastai.vision.all import DataBlock, ImageBlock, ColReader, ColSplitter, ConvLayer
from fastai_mtl.all import Tasks, CategoryTask, SegmentationTask

def rectangles(n, size=32, seed=0):
    "`n` noisy images with a red or green rectangle, its mask (0 background, 1 red, 2 green) and its colour; the last quarter for validation"
    rng = np.random.default_rng(seed)
    h,w = (size, size) if isinstance(size, int) else size
    imgs,masks,colors = [],[],[]
    for _ in range(n):
        img,mask = rng.integers(0, 60, (h, w, 3), dtype=np.uint8),np.zeros((h, w), dtype=np.uint8)
        c = rng.integers(1, 3)
        y,x,dy,dx = rng.integers(0, h//2),rng.integers(0, w//2),rng.integers(h//4, h//2),rng.integers(w//4, w//2)
        img[y:y+dy, x:x+dx, c-1] = 220
        mask[y:y+dy, x:x+dx] = c
        imgs.append(img); masks.append(mask); colors.append(['red', 'green'][c-1])
    return pd.DataFrame(dict(image=imgs, seg=masks, color=colors, is_valid=np.arange(n) >= int(0.75*n)))

def rect_tasks(): return Tasks(SegmentationTask('seg', codes=['background', 'red', 'green']), CategoryTask('color'))

def rect_dls(tasks, df, bs=16, item_tfms=None):
    dblock = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=ColReader('image'), get_y=tasks.getters,
                       splitter=ColSplitter('is_valid'), item_tfms=item_tfms)
    return dblock.dataloaders(df, bs=bs, num_workers=0)

def tiny_encoder():
    "Three stride-2 convolutions, 64 features"
    return nn.Sequential(ConvLayer(3, 16, stride=2), ConvLayer(16, 32, stride=2), ConvLayer(32, 64, stride=2), nn.AdaptiveAvgPool2d(1))

def trivial_pixel_accuracy(df):
    "Validation pixel accuracy of predicting, at each pixel, its most frequent class in the training masks of `df`"
    train,valid = (torch.from_numpy(np.stack(df.seg[df.is_valid == v])) for v in (False, True))
    majority = F.one_hot(train.long(), int(train.max())+1).sum(0).argmax(-1)
    return (valid == majority).float().mean().item()

def pixel_accuracy(preds, targs): return (preds.argmax(1) == targs).float().mean().item()
