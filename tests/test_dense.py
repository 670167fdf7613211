"Dense tasks end to end: a DataBlock of image, mask, depth, normals and a label; augmentation keeps them aligned; bad input"
import math
import pytest
import numpy as np, pandas as pd, torch
import torch.nn.functional as F
from PIL import Image
from fastcore.test import test_eq as _eq, test_close as _close
from fastai.vision.all import (DataBlock, ImageBlock, ColReader, IndexSplitter, Resize, RandomResizedCrop, FlipItem, DihedralItem, Flip, Rotate,
                               Dihedral, Zoom, Brightness, Contrast, aug_transforms)
from fastai_mtl.all import (Tasks, CategoryTask, SegmentationTask, DepthTask, NormalsTask, MultiTaskLoss, TensorSegMask, TensorDepth,
                            TensorNormals, check_dense)

H,W,CODES = 24, 32, ['left_top', 'right_top', 'left_bottom', 'right_bottom']

def _grid(h=H, w=W): return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
def _classes(x, y): return (x >= W/2).astype(int) + 2*(y >= H/2).astype(int)
def _depth(x, y): return 1 + x/10 + y/100
def _sphere(x, y, c=((W-1)/2, (H-1)/2), r=40.):
    "Normals of a sphere seen face on, centred in the image: invariant under rotations and flips about the centre"
    n = np.stack([x - c[0], y - c[1], np.full_like(x, -r)])
    return n / np.linalg.norm(n, axis=0)

def write_toy(path, n=8, missing=()):
    "Images whose red and green encode the position; a quadrant mask (one void pixel), depth (16-bit PNG), sphere normals (.npy)"
    x,y = _grid()
    rows = []
    for i in range(n):
        img = np.stack([x*8, y*10, np.full_like(x, 40*(i % 2))], -1).astype(np.uint8)
        Image.fromarray(img).save(path/f'{i}.png')
        mask = _classes(x, y).astype(np.uint8); mask[0, 0] = 255
        Image.fromarray(mask).save(path/f'{i}_seg.png')
        Image.fromarray((_depth(x, y)*1000).astype(np.uint16)).save(path/f'{i}_depth.png')
        np.save(path/f'{i}_normals.npy', _sphere(x, y).transpose(1, 2, 0))
        rows.append(dict(image=f'{i}.png', seg=f'{i}_seg.png', depth=f'{i}_depth.png', normals=f'{i}_normals.npy', scene='ab'[i % 2]))
    df = pd.DataFrame(rows)
    for i,col in missing: df.loc[i, col] = None
    return df

def dense_tasks(path):
    return Tasks(SegmentationTask('seg', codes=CODES, getter=ColReader('seg', pref=path)),
                 DepthTask('depth', getter=ColReader('depth', pref=path)),
                 NormalsTask('normals', getter=ColReader('normals', pref=path)),
                 CategoryTask('scene'))

def dense_dls(path, df, tasks, item_tfms=None, batch_tfms=None, bs=4):
    dblock = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=ColReader('image', pref=path), get_y=tasks.getters,
                       splitter=IndexSplitter([]), item_tfms=item_tfms, batch_tfms=batch_tfms)
    return dblock.dataloaders(df, bs=bs, shuffle=False, num_workers=0)

@pytest.fixture
def toy(tmp_path): return tmp_path, write_toy(tmp_path)

def _plain(b): return [o.as_subclass(torch.Tensor) for o in b]

def _source_xy(img):
    "Continuous source position of each pixel of a batch of position-coded images (bs, 3, h, w) in [0, 1]"
    return img[:, 0]*255/8, img[:, 1]*255/10

def test_batch_types_and_values(toy):
    path,df = toy
    tasks = dense_tasks(path)
    x,seg,depth,normals,scene = dense_dls(path, df, tasks).one_batch()
    _eq([type(o) for o in (seg, depth, normals)], [TensorSegMask, TensorDepth, TensorNormals])
    _eq([o.shape for o in (x, seg, depth, normals)], [(4, 3, H, W), (4, H, W), (4, 1, H, W), (4, 3, H, W)])
    xs,ys = _grid()
    expect = torch.from_numpy(_classes(xs, ys)); expect[0, 0] = -1   # the void pixel
    _eq(seg[0], expect)
    _close(depth[0, 0], torch.from_numpy(_depth(xs, ys)), eps=1e-3)
    _close(normals[0], torch.from_numpy(_sphere(xs, ys)), eps=1e-5)
    _eq(seg.dtype, torch.long); _eq(depth.dtype, torch.float32)

def test_dense_targets_are_read_per_item(toy):
    path,df = toy
    dls = dense_dls(path, df, dense_tasks(path))
    _eq([t is None for t in dls.train.encoded_targets()], [True, True, True, True, False])   # only the label is encoded at once

def test_missing_targets_after_resize(tmp_path):
    df = write_toy(tmp_path, missing=[(1, 'seg'), (2, 'depth'), (3, 'normals'), (0, 'scene')])
    tasks = dense_tasks(tmp_path)
    for tfms in (Resize(16), RandomResizedCrop(16, min_scale=0.5)):
        x,seg,depth,normals,scene = dense_dls(tmp_path, df, tasks, item_tfms=tfms).one_batch()
        _eq(seg.shape, (4, 16, 16)); _eq(depth.shape, (4, 1, 16, 16)); _eq(normals.shape, (4, 3, 16, 16))
        assert (seg[1] == -1).all() and depth[2].isnan().all() and normals[3].isnan().all()
        assert (seg[0] >= 0).sum() > 0 and not depth[0].isnan().any() and not normals[0].isnan().any()
        _eq([t.item_mask(y).tolist() for t,y in zip(tasks, (seg, depth, normals, scene))],
                [[True, False, True, True], [True, True, False, True], [True, True, True, False], [False, True, True, True]])
        lf = MultiTaskLoss(tasks)
        preds = (torch.zeros(4, 4, 16, 16), torch.ones(4, 1, 16, 16), torch.randn(4, 3, 16, 16), torch.zeros(4, 2))
        loss = lf(preds, seg, depth, normals, scene)
        assert loss.isfinite()
        _close(lf.task_losses[0], math.log(4))   # uniform scores over the 4 codes on every labelled pixel
        _eq(lf.task_counts[:3].tolist(), [(seg >= 0).sum().item(), (~depth.isnan()).sum().item(), (~normals[:, 0].isnan()).sum().item()])

def test_item_transforms_keep_alignment(toy):
    "Resize with a crop and RandomResizedCrop move mask, depth and normals with the image (nearest neighbour)"
    path,df = toy
    for tfms in ([Resize(16)], [RandomResizedCrop(20, min_scale=0.3)], [Resize(20, method='squish'), FlipItem(p=1.)], [DihedralItem(p=1.), Resize(16)]):
        x,seg,depth,normals,_ = _plain(dense_dls(path, df, dense_tasks(path), item_tfms=tfms).one_batch())
        sx,sy = _source_xy(x)
        # the images are resized bilinearly, the targets by nearest neighbour: compare away from the class borders
        inner = ((sx - W/2).abs() > 1.5) & ((sy - H/2).abs() > 1.5) & (seg >= 0)
        _eq(seg[inner], torch.from_numpy(_classes(sx[inner].round().numpy(), sy[inner].round().numpy())))
        _close(depth[:, 0], _depth(sx, sy), eps=0.12)

def _angles(a, b): return F.cosine_similarity(a, b, dim=1).clamp(-1, 1).acos().rad2deg()

@pytest.mark.parametrize('tfm', [Flip(p=1.), Rotate(p=1., draw=25.), Rotate(p=1., draw=-40.), Dihedral(p=1., draw=[1, 3, 5, 6]), Zoom(p=1., min_zoom=1.2, max_zoom=1.3)])
def test_batch_transforms_keep_alignment_and_turn_normals(toy, tfm):
    path,df = toy
    x,seg,depth,normals,_ = _plain(dense_dls(path, df, dense_tasks(path), batch_tfms=[tfm]).one_batch())
    sx,sy = _source_xy(x)
    inner = ((sx - W/2).abs() > 1.5) & ((sy - H/2).abs() > 1.5) & (seg >= 0)
    agree = (seg[inner] == torch.from_numpy(_classes(sx[inner].round().numpy(), sy[inner].round().numpy()))).float().mean()
    assert agree > 0.99, agree
    _close(depth[:, 0], _depth(sx, sy), eps=0.12)
    xs,ys = _grid()
    if isinstance(tfm, Zoom):   # a zoom moves the normals without turning them: each is the one of its source pixel
        expect = torch.from_numpy(_sphere(sx.numpy(), sy.numpy()).transpose(1, 0, 2, 3))
    else:                       # flips, rotations and transpositions about the centre leave the sphere as it is
        expect = torch.from_numpy(_sphere(xs, ys))[None].expand_as(normals)
    r = np.hypot(xs - (W-1)/2, ys - (H-1)/2) < H/2 - 2
    err = _angles(normals, expect)[:, torch.from_numpy(r)]
    assert err.mean() < 1.5, err.mean()
    if not isinstance(tfm, Zoom):   # moved but not turned, the vectors would be far off
        moved = torch.from_numpy(_sphere(sx.numpy(), sy.numpy()).transpose(1, 0, 2, 3))
        assert _angles(moved, expect)[:, torch.from_numpy(r)].mean() > 4

def test_flip_negates_x(toy):
    path,df = toy
    dls = dense_dls(path, df, dense_tasks(path))
    plain = dls.one_batch()
    flipped = Flip(p=1.)(plain, split_idx=0)
    _close(flipped[3][:, 0], -plain[3][:, 0].flip(-1), eps=1e-6)
    _close(flipped[3][:, 1:], plain[3][:, 1:].flip(-1), eps=1e-6)
    _eq(flipped[1], plain[1].flip(-1))
    _close(FlipItem(p=1.)(plain[3][0], split_idx=0)[0], -plain[3][0, 0].flip(-1))

def test_lighting_leaves_targets(toy):
    path,df = toy
    b = dense_dls(path, df, dense_tasks(path), batch_tfms=[Brightness(max_lighting=0.9, p=1.), Contrast(max_lighting=0.9, p=1.)]).one_batch()
    plain = dense_dls(path, df, dense_tasks(path)).one_batch()
    assert not torch.allclose(b[0], plain[0])
    for o,p in zip(b[1:4], plain[1:4]): _eq(o, p)

def test_aug_transforms(toy):
    "The user's pipeline: Resize and aug_transforms, shapes and types"
    path,df = toy
    x,seg,depth,normals,_ = dense_dls(path, df, dense_tasks(path), item_tfms=Resize(16), batch_tfms=aug_transforms()).one_batch()
    _eq([type(o) for o in (seg, depth, normals)], [TensorSegMask, TensorDepth, TensorNormals])
    _eq(normals.shape, (4, 3, 16, 16))
    known = ~normals[:, 0].isnan()
    _close(normals.norm(dim=1)[known], torch.ones(int(known.sum())), eps=1e-4)

# Bad input: each a clear error naming the task, the item and what was expected

def _first_batch(path, df, **kwargs): return dense_dls(path, df, dense_tasks(path), **kwargs).one_batch()

def test_mask_value_outside_codes(toy):
    path,df = toy
    Image.fromarray(np.full((H, W), 7, dtype=np.uint8)).save(path/'2_seg.png')
    with pytest.raises(ValueError, match=r"Task 'seg': the target '.*2_seg\.png' has values \[7\] that are not class ids of the 4 codes \(0 to 3\) nor the void value 255"):
        _first_batch(path, df)

def test_target_size_differs(toy):
    path,df = toy
    Image.fromarray(np.zeros((H, W-2), dtype=np.uint16)).save(path/'1_depth.png')
    with pytest.raises(ValueError, match=r"Task 'depth': the target '.*1_depth\.png' is 30x24 pixels \(width x height\), but its image is 32x24"):
        _first_batch(path, df, item_tfms=Resize(16))

def test_normals_not_unit(toy):
    path,df = toy
    np.save(path/'3_normals.npy', np.ones((H, W, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"Task 'normals': the target '.*3_normals\.npy' has normals that are not unit vectors: length 1\.73 at pixel \(x=0, y=0\)"):
        _first_batch(path, df)

def test_unreadable_target(toy):
    path,df = toy
    (path/'0_seg.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match=r"Task 'seg': cannot read the target file '.*0_seg\.png' \(expected an image file or a \.npy array\)"):
        _first_batch(path, df)

def test_model_output_of_wrong_size(toy):
    path,df = toy
    tasks = dense_tasks(path)
    b = dense_dls(path, df, tasks).one_batch()
    preds = (torch.zeros(4, 4, H//2, W//2), torch.ones(4, 1, H, W), torch.randn(4, 3, H, W), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"Task 'seg': the model's output has shape \(4, 4, 12, 16\), expected \(4, 4, 24, 32\)"):
        MultiTaskLoss(tasks)(preds, *b[1:])

def test_check_dense_lists_every_bad_target_before_training(toy):
    path,df = toy
    np.save(path/'3_normals.npy', np.ones((H, W, 3), dtype=np.float32))
    (path/'5_depth.png').write_bytes(b'not a png')
    dls = dense_dls(path, df, dense_tasks(path), item_tfms=Resize(16))   # building the DataLoaders reads no target
    with pytest.raises(ValueError, match=r"(?s)2 item\(s\) have bad targets:\ntraining item 3: Task 'normals': .*not unit vectors.*\ntraining item 5: Task 'depth': cannot read"):
        check_dense(dls)
