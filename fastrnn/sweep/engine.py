"""Run many training runs, locally or on a Dask cluster, losing nothing.

Durable results: OUT/results.jsonl gets one JSON line per finished run (summary, config and
metrics), appended and flushed to disk the moment the run's result reaches the driver; a torn
last line (a crash mid-write) is ignored on reading. Re-running skips every run recorded
there, and resumes the others from their checkpoints in OUT/runs/<name>/ when that folder is
reachable from the worker (always with the local pool; with Dask when OUT is on a shared
file system).

Faults: a run that raises is recorded as failed with the reason. A worker process that dies
is not the run's fault: with Dask the scheduler reruns the task on another worker, up to
``retries`` deaths (then it is recorded as failed); with the local pool, the runs that were in
flight are resubmitted to a fresh pool, each at most ``retries`` times. Ctrl-C stops the runs at
a step boundary with a checkpoint; everything recorded stays.
"""
import json
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..train.config import TrainConfig

# Each worker process computes with one thread: the workers themselves fill the cores.
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


class ResultStore:
    """OUT/results.jsonl: append-only, one record per finished run."""

    def __init__(self, out):
        self.path = Path(out) / "results.jsonl"
        self.records = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a crash: that run is simply not finished
                if isinstance(rec, dict) and "name" in rec:
                    self.records[rec["name"]] = rec

    def append(self, rec):
        data = (json.dumps(rec) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)  # one write: the line lands whole or (after a crash) torn
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records[rec["name"]] = rec


class _ParentWatch:
    """Stop flag for a local worker: Ctrl-C, or the driver gone (the worker was orphaned),
    stops the run at a step boundary with a checkpoint."""

    def __init__(self):
        self._ppid = os.getppid()
        self._sigint = False

    def __enter__(self):
        signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _handle(self, *_):
        self._sigint = True

    @property
    def stop(self):
        return self._sigint or os.getppid() != self._ppid


def run_task(name, cfg_dict, run_dir, local=False):
    """Train one run in run_dir (resuming it if a checkpoint is there); return its record.
    Runs in a worker process; any error becomes a 'failed' record."""
    from .. import threads
    from ..train.loop import train

    threads.set_threads(1)  # the same arithmetic on every backend: results equal exactly
    record = dict(name=name, config=cfg_dict, host=os.uname().nodename, pid=os.getpid())
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        attempts_path = Path(run_dir) / "attempts"
        attempts = int(attempts_path.read_text()) + 1 if attempts_path.exists() else 1
        attempts_path.write_text(str(attempts))
        record["attempts"] = attempts
        summary = train(TrainConfig.from_dict(cfg_dict), run_dir, resume=True,
                        stop=_ParentWatch() if local else None)
        metrics = Path(run_dir) / "metrics.jsonl"
        record["metrics"] = [json.loads(ln) for ln in metrics.read_text().splitlines() if ln.strip()]
        record.update(status=summary["status"], summary=summary)
    except Exception as e:  # noqa: BLE001 - recorded with the reason, never swallowed
        record.update(status="failed", message=f"{type(e).__name__}: {e}")
    return record


def _init_local_worker():
    os.environ.update(WORKER_ENV)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _finish(store, rec, on_event):
    if rec.get("status") == "interrupted":
        on_event("interrupted", rec["name"], rec)
        return
    rec["finished_at"] = time.time()
    store.append(rec)
    on_event("done", rec["name"], rec)


def run_local(todo, out, store, workers, retries, on_event):
    ctx = multiprocessing.get_context("spawn")  # no forked BLAS or thread state
    old = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)  # read by each child as it starts
    deaths = {name: 0 for name, _ in todo}
    pending = list(todo)
    try:
        while pending:
            n = max(1, min(workers, len(pending)))
            with ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_local_worker) as pool:
                futures = {pool.submit(run_task, name, cfg.to_dict(), str(out / "runs" / name), True): (name, cfg)
                           for name, cfg in pending}
                for name, _ in pending:
                    on_event("started", name, None)
                pending = []
                try:
                    for fut in as_completed(futures):
                        name, cfg = futures[fut]
                        try:
                            _finish(store, fut.result(), on_event)
                        except BrokenProcessPool:
                            deaths[name] += 1
                            if deaths[name] > retries:
                                _finish(store, dict(name=name, config=cfg.to_dict(), status="failed",
                                                    message=f"worker process died {deaths[name]} times"), on_event)
                            else:
                                on_event("retry", name, None)
                                pending.append((name, cfg))
                except KeyboardInterrupt:
                    pool.shutdown(wait=False, cancel_futures=True)
                    for p in list(getattr(pool, "_processes", {}).values()):
                        try:
                            os.kill(p.pid, signal.SIGINT)  # stop at a step boundary, checkpoint
                        except ProcessLookupError:
                            pass
                    raise
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_dask(todo, out, store, scheduler, retries, on_event):
    try:
        from distributed import Client, KilledWorker, as_completed as dask_completed
    except ImportError:
        raise ValueError("scheduler: Dask is not installed; pip install 'fastrnn[dask]'") from None
    import dask

    dask.config.set({"distributed.scheduler.allowed-failures": retries})
    try:
        client = scheduler if isinstance(scheduler, Client) else Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise ValueError(f"scheduler: cannot reach {scheduler} ({e})") from None
    try:
        futures = {}
        for name, cfg in todo:
            fut = client.submit(run_task, name, cfg.to_dict(), str(out / "runs" / name), key=f"fastrnn-{name}-{time.time_ns()}",
                                pure=False)
            futures[fut] = (name, cfg)
            on_event("started", name, None)
        try:
            for fut in dask_completed(list(futures)):
                name, cfg = futures[fut]
                try:
                    rec = fut.result()
                except KilledWorker as e:
                    rec = dict(name=name, config=cfg.to_dict(), status="failed",
                               message=f"worker died running it {retries + 1} times ({e})")
                except Exception as e:  # noqa: BLE001 - the cluster lost it: recorded, not fatal
                    rec = dict(name=name, config=cfg.to_dict(), status="failed", message=f"{type(e).__name__}: {e}")
                _finish(store, rec, on_event)
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise
    finally:
        if not isinstance(scheduler, Client):
            client.close()


def execute(runs, out, scheduler=None, workers=None, retries=2, on_event=None):
    """Run [(name, TrainConfig)] into OUT; return {name: record} for every finished run.

    scheduler: None for a local pool of ``workers`` processes (default: one per core), or a
    Dask scheduler address ('tcp://host:8786') or distributed.Client.
    on_event(kind, name, record): kind in started | done | retry | interrupted.
    """
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    store = ResultStore(out)
    for name, cfg in runs:
        old = store.records.get(name)
        if old is not None and old.get("config") != cfg.to_dict():
            raise ValueError(f"out: {out} already holds run {name} with other options; use another --out "
                             f"(finished runs are never overwritten)")
    on_event = on_event or (lambda *a: None)
    todo = [(n, c) for n, c in runs if n not in store.records]
    for name, _ in runs:
        if name in store.records:
            on_event("done", name, store.records[name])
    if todo:
        if scheduler is None:
            run_local(todo, out, store, workers or os.cpu_count() or 1, retries, on_event)
        else:
            run_dask(todo, out, store, scheduler, retries, on_event)
    return {n: store.records[n] for n, _ in runs if n in store.records}
