"""What the benchmarks share: device and thread set-up, paired timing, peak memory, the machine's description, Markdown."""
import os, time, platform, warnings, argparse, resource
from pathlib import Path
import numpy as np, pandas as pd, torch

warnings.filterwarnings('ignore')
RESULTS = Path(__file__).parent/'results'

def add_device_args(p, threads=1):
    "The options every benchmark takes: device, fp16, CPU threads"
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    p.add_argument('--fp16', action='store_true', help='mixed precision (cuda only)')
    p.add_argument('--threads', type=int, default=threads, help='torch CPU threads (1 avoids oversubscription on a shared CPU)')
    p.add_argument('--tag', default='', help="suffix for the result file, to keep a variant's run next to the default one")
    return p

def setup(args):
    "Check the device options, set the CPU threads, return the torch device"
    if args.device.startswith('cuda') and not torch.cuda.is_available(): raise SystemExit(f"--device {args.device}: no CUDA GPU is available")
    if args.fp16 and not args.device.startswith('cuda'): raise SystemExit("--fp16 needs --device cuda (CPU mixed precision is not benchmarked)")
    torch.set_num_threads(args.threads)
    return torch.device(args.device)

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)

def timed(f, device, clock=time.perf_counter):
    "Seconds that `f()` takes on `clock` (wall time; `time.process_time` for this process's CPU time), with the GPU synchronised before and after"
    sync(device); start = clock()
    f()
    sync(device); return clock() - start

def page_faults(f):
    "Minor page faults (memory the process got back from the kernel) and system CPU seconds while `f()` runs"
    start = resource.getrusage(resource.RUSAGE_SELF)
    f()
    end = resource.getrusage(resource.RUSAGE_SELF)
    return end.ru_minflt - start.ru_minflt, end.ru_stime - start.ru_stime

def _rss_kib(field):
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field): return int(line.split()[1])

def peak_memory(f, device):
    "Peak memory (MiB) that `f()` adds over what was in use before it: CUDA allocator peak, or resident set size on the CPU"
    if device.type == 'cuda':
        sync(device); torch.cuda.reset_peak_memory_stats(device); base = torch.cuda.memory_allocated(device)
        f(); sync(device)
        return (torch.cuda.max_memory_allocated(device) - base)/2**20
    Path('/proc/self/clear_refs').write_text('5')          # resets VmHWM (the peak RSS) to the current RSS
    base = _rss_kib('VmRSS')
    f()
    return (_rss_kib('VmHWM') - base)/1024

def paired(fs:dict, rounds, device, warmup=True, clock=time.perf_counter):
    "Time every function of `fs` once per round on `clock`, in an order that alternates between rounds; return {name: [seconds]}"
    if warmup:
        for f in fs.values(): f()
    times = {k: [] for k in fs}
    for r in range(rounds):
        for k in (list(fs) if r % 2 == 0 else list(fs)[::-1]): times[k].append(timed(fs[k], device, clock))
    return times

def median_ratio(num, den):
    "Median over rounds of the per-round ratio `num/den` (both lists of seconds from the same rounds)"
    return float(np.median(np.array(num)/np.array(den)))

def machine(device, args):
    "One line describing where the numbers come from"
    if device.type == 'cuda': hw = f"GPU: {torch.cuda.get_device_name(device)}{', fp16 (mixed precision)' if args.fp16 else ', fp32'}"
    else:
        cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), platform.machine())
        hw = f"CPU: {cpu}, {os.cpu_count()} cores shared with other jobs, {torch.get_num_threads()} torch thread(s), load average {os.getloadavg()[0]:.1f} at the end"
    return f"{hw}; torch {torch.__version__}, Python {platform.python_version()}" + (f"; glibc settings {malloc_settings()}." if malloc_settings() else '.')

def malloc_settings():
    "The glibc allocator settings of this process's environment (`MALLOC_*`), as `NAME=value` words"
    return ' '.join(f'{k}={v}' for k,v in sorted(os.environ.items()) if k.startswith('MALLOC_'))

def suffix(args):
    "Result-file suffix: '' for the CPU, '_cuda' or '_cuda_fp16' on a GPU, then '_{tag}' if `--tag` is given"
    return ('' if args.device == 'cpu' else '_cuda' + ('_fp16' if args.fp16 else '')) + (f'_{args.tag}' if args.tag else '')

def md_table(df:pd.DataFrame)->str:
    "A DataFrame as a Markdown table"
    rows = [df.columns.tolist()] + df.astype(str).values.tolist()
    lines = ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]
    return '\n'.join([lines[0], '|' + '---|'*len(df.columns)] + lines[1:])

def write(name, text, args):
    "Write `bench/results/{name}{suffix}.md` and print it"
    out = RESULTS/f'{name}{suffix(args)}.md'
    out.parent.mkdir(exist_ok=True)
    out.write_text(text.strip() + '\n')
    print(out.read_text())
    return out

def image_df(n, size, n_tasks, n_classes=10, channels=3, seed=0):
    "A DataFrame of `n` random uint8 images (in memory) and `n_tasks` random labels `t0`, `t1`, ...; the last 20% marked `is_valid`"
    rng = np.random.default_rng(seed)
    shape = (n, size, size, channels) if channels > 1 else (n, size, size)
    df = pd.DataFrame(dict(image=list(rng.integers(0, 256, shape, dtype=np.uint8))))
    for i in range(n_tasks): df[f't{i}'] = rng.integers(0, n_classes, n)
    df['is_valid'] = np.arange(n) >= int(n*0.8)
    return df
