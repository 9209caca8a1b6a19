"""Run many training runs, locally or on a Dask cluster, losing nothing.

Durable results: OUT/results.jsonl gets one JSON line per finished run (summary, config and
metrics), appended and flushed to disk the moment the run's result reaches the driver. A line
torn by a crash is ignored on reading and cut off before the next append. Re-running skips
every run recorded as finished, retries those recorded as failed (``skip_failed`` keeps them),
and resumes the others from their checkpoints in OUT/runs/<name>/ when that folder is
reachable from the worker (always with the local pool; with Dask when OUT is on a shared
file system).

One writer per folder: the driver holds OUT/.lock for the sweep's life and each run holds its
run folder's lock (fastrnn.train.lock), so two sweeps on one OUT, or a rerun beside an orphan
of a killed driver, never write the same files.

Faults:
- a run that raises is recorded as failed with the reason;
- a worker process that dies is not the run's fault: with the local pool exactly the run that
  was on that worker is retried (resuming from its checkpoint) on a fresh worker, at most
  ``retries`` times, while the other workers go on; with Dask the scheduler does the same;
- Ctrl-C or SIGTERM to the driver stops every run at a step boundary with a checkpoint,
  starts nothing new, records what finished and raises :class:`Interrupted`;
- a driver that dies (even by kill -9) leaves no orphan running: an idle worker sees its
  task pipe close, a busy one sees its parent change at the next step, checkpoints and exits.

Why a small pool of our own rather than concurrent.futures: ProcessPoolExecutor cannot tell
which worker died (every run in flight fails with BrokenProcessPool, and the executor kills
the healthy workers too), and its workers outlive a killed driver.
"""
import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from pathlib import Path

from .. import fileio
from ..train.checkpoint import read_records
from ..train.config import TrainConfig
from ..train.lock import FolderLock
from ..train.signals import StopFlag

# Each worker process computes with one thread: the workers themselves fill the cores.
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
# A run folder still held by another process (an orphan finishing its step) is waited for
# this long before the run is recorded as failed.
RUN_LOCK_WAIT = 60.0
STOP_POLL = 0.2  # seconds between the driver's looks at its workers and its stop flag


class Interrupted(KeyboardInterrupt):
    """The sweep was stopped by a signal; ``signum`` says which (SIGINT or SIGTERM)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ResultStore:
    """OUT/results.jsonl: append-only, one record per finished run (the last one counts)."""

    def __init__(self, out):
        self.path = Path(out) / "results.jsonl"
        self.records = {}
        self._checked_tail = False
        data = fileio.read_bytes(self.path)
        if data:
            for line in data.decode(errors="replace").splitlines():
                try:
                    rec = fileio.loads(line, "results")
                except ValueError:
                    continue  # a line torn by a crash (or not ours): that run is simply not finished
                if isinstance(rec, dict) and isinstance(rec.get("name"), str):
                    self.records[rec["name"]] = rec

    def _repair_tail(self, fd):
        """Cut a torn last line (no final newline) off, so the next record starts on a line of
        its own instead of being glued onto the fragment and lost with it."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        keep, at = 0, size
        while at > 0:  # the last newline before the fragment
            chunk = os.pread(fd, min(65536, at), max(0, at - 65536))
            at -= len(chunk)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = at + i + 1
                break
        os.ftruncate(fd, keep)

    def append(self, rec):
        fileio.append_bytes(self.path, fileio.json_line(rec).encode(),
                            before=None if self._checked_tail else self._repair_tail)
        self._checked_tail = True
        self.records[rec["name"]] = rec


class _StopWatch:
    """A worker's stop flag: SIGINT or SIGTERM (from the driver, or the terminal's Ctrl-C),
    or the driver gone (the worker was orphaned), stops the run at a step boundary with a
    checkpoint. Once set it stays set: a worker told to stop never starts a run again."""

    def __init__(self, ppid):
        self._ppid = ppid
        self._signalled = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, *_):
        self._signalled = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    @property
    def stop(self):
        return self._signalled or os.getppid() != self._ppid


ATTEMPTS = "attempt.json"


def _attempt(path):
    """Count this attempt at a run in its attempt record, OUT/runs/NAME/attempt.json:
    {"attempts": n, "pid": this process, "host": this machine}, written before training starts,
    so the process holding a run can be found (and a retry seen) from outside."""
    try:
        old = fileio.read_json(path, "attempt", limit=4096) or {}
        attempts = int(old.get("attempts", 0)) + 1
    except (ValueError, TypeError, AttributeError):
        attempts = 1  # torn by a crash, or not ours: the count is advice, not state
    fileio.atomic_write_json(path, dict(attempts=attempts, pid=os.getpid(), host=os.uname().nodename))
    return attempts


def run_task(name, cfg_dict, run_dir, profile=False, stop=None, lock_wait=RUN_LOCK_WAIT, progress=None):
    """Train one run in run_dir (resuming it if a checkpoint is there); return its record.
    Runs in a worker process, holding the run folder's lock; any error becomes a 'failed'
    record. progress: train()'s callback (step, steps, latest evaluation). profile: also the
    run's gradient profiles at initialization and after training (gradients.run_profiles) in
    record["gradients"], computed here, beside the other workers' runs, rather than after the
    sweep in the driver (whose float64 kernels took ~25 s to compile there, alone)."""
    from ..cpu import threads
    from ..train.loop import train

    threads.set_threads(1)  # the same arithmetic on every backend: results equal exactly
    record = dict(name=name, config=cfg_dict, host=os.uname().nodename, pid=os.getpid())
    try:
        fileio.check_folder(Path(run_dir).parent)  # OUT/runs, and the run folder itself: no links
        fileio.check_folder(run_dir, [ATTEMPTS])
        with FolderLock(run_dir, what="run", wait=lock_wait):
            record["attempts"] = _attempt(Path(run_dir) / ATTEMPTS)
            summary = train(TrainConfig.from_dict(cfg_dict), run_dir, resume=True, stop=stop, lock=False,
                            progress=progress)
            record["metrics"], _ = read_records(Path(run_dir) / "metrics.jsonl")
            record.update(status=summary["status"], summary=summary)
            if profile and summary["status"] != "interrupted":
                try:
                    from ..gradients import run_profiles

                    record["gradients"] = run_profiles(TrainConfig.from_dict(cfg_dict), run_dir)
                except Exception as e:  # noqa: BLE001 - the run stands; the driver profiles it instead
                    record["gradients_error"] = f"{type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001 - recorded with the reason, never swallowed
        record.update(status="failed", message=f"{type(e).__name__}: {e}")
    return record


class _DaskStop:
    """The stop flag of a run on a Dask worker: a cluster-wide Event the driver sets on
    Ctrl-C/SIGTERM, looked at no more than once a second (each look asks the scheduler)."""

    def __init__(self, event_name):
        self.name, self._next, self._stop = event_name, 0.0, False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    @property
    def stop(self):
        if not self._stop and time.monotonic() >= self._next:
            from distributed import Event

            self._stop = Event(self.name).is_set()
            self._next = time.monotonic() + 1.0
        return self._stop


def run_dask_task(name, cfg_dict, run_dir, event_name, profile=False):
    return run_task(name, cfg_dict, run_dir, profile, stop=_DaskStop(event_name))


class _Reporter:
    """A run's progress, sent to the driver as ("progress", name, info): at every new
    evaluation, and otherwise at most once a second (the pipe never fills)."""

    def __init__(self, conn, name):
        self.conn, self.name, self.last, self.t0, self.step0, self.sent_eval = conn, name, 0.0, None, None, None

    def __call__(self, step, steps, rec):
        now = time.monotonic()
        if self.t0 is None:
            self.t0, self.step0 = now, step  # steps/s from the end of the first step (no compile)
        new_eval = rec is not None and rec["step"] != self.sent_eval
        if not new_eval and now - self.last < 1.0:
            return
        self.last = now
        info = dict(step=step, steps=steps, eval=new_eval,
                    rate=(step - self.step0) / (now - self.t0) if now > self.t0 else None)
        if rec is not None:
            self.sent_eval = rec["step"]
            info.update(eval_step=rec["step"], metric=rec.get("metric"), loss=rec.get("loss"))
        try:
            self.conn.send(("progress", self.name, info))
        except OSError:
            pass  # the driver is gone: the stop watch ends the run at its next step


def _worker_main(conn, ppid):
    """A local worker: take (name, config, run folder) from the pipe, train (reporting its
    progress), send the record back; exit when the pipe closes (the driver finished, or died)."""
    os.environ.update(WORKER_ENV)
    watch = _StopWatch(ppid)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        rec = run_task(*msg, stop=watch, progress=_Reporter(conn, msg[0]))
        try:
            conn.send(rec)
        except OSError:
            return  # the driver is gone; the run's checkpoint is on disk


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, os.getpid()), daemon=True)
        self.proc.start()
        child.close()  # only the worker holds its end: our death closes the pipe for it
        self.run = None  # (name, cfg) in flight

    def assign(self, name, cfg, out, profile=False):
        self.run = (name, cfg)
        self.conn.send((name, cfg.to_dict(), str(out / "runs" / name), profile))

    def signal(self, sig):
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def close(self):
        try:
            self.conn.close()
        except OSError:
            pass


def _finish(store, rec, on_event):
    if rec.get("status") == "interrupted":
        on_event("interrupted", rec["name"], rec)
        return
    rec["finished_at"] = time.time()
    store.append(rec)
    on_event("done", rec["name"], rec)


def run_local(todo, out, store, workers, retries, on_event, stopper, profile=()):
    ctx = multiprocessing.get_context("spawn")  # no forked BLAS or thread state
    queue = collections.deque(todo)
    deaths = collections.Counter()
    pool = []
    old_env = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)  # read by each child as it starts
    try:
        forwarded = False
        while True:
            stopping = stopper.signum is not None
            if stopping and not forwarded:
                for w in pool:  # runs stop at a step boundary and write a checkpoint
                    if w.run is not None:
                        w.signal(signal.SIGINT)
                forwarded = True
            idle = sum(w.run is None for w in pool)
            if not stopping:  # workers are started (and dead ones replaced) only for queued runs
                pool += [_Worker(ctx) for _ in range(min(workers - len(pool), len(queue) - idle))]
            for w in pool:
                if not stopping and w.run is None and queue:
                    name, cfg = queue.popleft()
                    w.assign(name, cfg, out, name in profile)
                    on_event("started", name, None)
            busy = [w for w in pool if w.run is not None]
            if not busy:
                break
            multiprocessing.connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], STOP_POLL)
            for w in list(pool):
                if w.run is None:
                    continue
                name, cfg = w.run
                rec = None
                try:
                    while rec is None and w.conn.poll():
                        msg = w.conn.recv()
                        if isinstance(msg, tuple) and msg[0] == "progress":
                            on_event("progress", msg[1], msg[2])
                        else:
                            rec = msg
                except (EOFError, OSError):
                    rec = None
                if rec is not None:
                    w.run = None
                    _finish(store, rec, on_event)
                    continue
                if w.proc.is_alive():
                    continue
                # this worker died with this run: only this run is retried, on a fresh worker
                w.close()
                pool.remove(w)
                deaths[name] += 1
                code = w.proc.exitcode
                if deaths[name] > retries:
                    _finish(store, dict(name=name, config=cfg.to_dict(), status="failed",
                                        message=f"worker process died {deaths[name]} times "
                                                f"(last exit code {code})"), on_event)
                elif not stopping:
                    on_event("retry", name, None)
                    queue.appendleft((name, cfg))
    except BaseException:
        for w in pool:  # the driver itself failed (disk full, a bug): stop the runs cleanly
            if w.run is not None:
                w.signal(signal.SIGINT)
        raise
    finally:
        for w in pool:
            w.close()  # idle workers see the pipe close and exit
        for w in pool:
            w.proc.join(timeout=30)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_dask(todo, out, store, scheduler, retries, on_event, stopper, profile=()):
    try:
        from distributed import Client, Event, KilledWorker, as_completed as dask_completed
    except ImportError:
        raise ValueError("scheduler: Dask is not installed; pip install 'fastrnn[dask]'") from None
    import dask

    dask.config.set({"distributed.scheduler.allowed-failures": retries})
    try:
        client = scheduler if isinstance(scheduler, Client) else Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise ValueError(f"scheduler: cannot reach {scheduler} ({e})") from None
    event_name = f"fastrnn-stop-{os.getpid()}-{time.time_ns()}"
    stop_event = Event(event_name, client=client)
    try:
        futures = {}
        for name, cfg in todo:
            fut = client.submit(run_dask_task, name, cfg.to_dict(), str(out / "runs" / name), event_name,
                                name in profile, key=f"fastrnn-{name}-{time.time_ns()}", pure=False)
            futures[fut] = (name, cfg)
            on_event("started", name, None)
        pending = dask_completed(list(futures))
        stop_deadline = None
        while not pending.is_empty():
            if stopper.signum is not None and stop_deadline is None:
                stop_event.set()  # running runs checkpoint and return 'interrupted'
                on_workers = {k for keys in client.processing().values() for k in keys}
                client.cancel([f for f in futures if f.key not in on_workers])  # never started
                stop_deadline = time.monotonic() + 120
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                client.cancel(list(futures))
                break
            batch = pending.next_batch(block=False) if pending.has_ready() else []
            if not batch:
                time.sleep(STOP_POLL)
                continue
            for fut in batch:
                name, cfg = futures[fut]
                if fut.cancelled():
                    continue
                try:
                    rec = fut.result()
                except KilledWorker as e:
                    rec = dict(name=name, config=cfg.to_dict(), status="failed",
                               message=f"worker died running it {retries + 1} times ({e})")
                except Exception as e:  # noqa: BLE001 - the cluster lost it: recorded, not fatal
                    rec = dict(name=name, config=cfg.to_dict(), status="failed", message=f"{type(e).__name__}: {e}")
                _finish(store, rec, on_event)
    finally:
        if not isinstance(scheduler, Client):
            client.close()


# A rough per-step cost on one worker thread, from bench/results.json's rows on this project's
# 2-core machine: small steps are bound by fixed costs (~0.3-1 ms with an evaluation share),
# large ones run at 25-60 GFLOP/s a thread. The estimate takes the slow end of both, so it errs
# long; it is for "minutes or days?", not a schedule.
STEP_OVERHEAD_S = 1e-3
WORKER_GFLOPS = 20.0
# Above either, a sweep or compare asks before it starts (on a terminal; --yes elsewhere).
CONFIRM_RUNS = 500
CONFIRM_HOURS = 2.0


def step_flops(cfg):
    """Floating-point work of one training step: forward + backward of the recurrent layers,
    about 3x the forward's 2 flops a weight, per sequence and step."""
    from ..cells import CELLS

    cell, H = CELLS[cfg.cell], cfg.hidden
    T = cfg.seq_len or 100
    per_seq = sum(cell.param_count(H if k else 4, H) for k in range(cfg.layers)) * T
    return 6 * per_seq * cfg.batch_size


def estimate(runs, workers=None):
    """What a grid will cost before it runs: runs, training steps, floating-point work and a
    rough wall time on ``workers`` processes (default one per core). runs: [(name, cfg)], or
    [(count, cfg)] for ``count`` runs alike (a large compare, estimated before it is built)."""
    n = flops = steps = seconds = 0
    for name, cfg in runs:
        k = name if isinstance(name, int) else 1
        f = step_flops(cfg)
        n += k
        steps += k * cfg.steps
        flops += k * f * cfg.steps
        seconds += k * cfg.steps * (STEP_OVERHEAD_S + f / (WORKER_GFLOPS * 1e9))
    workers = max(1, min(workers or os.cpu_count() or 1, n or 1))
    hours = seconds / workers / 3600
    return dict(runs=n, steps=steps, tflop=flops / 1e12, hours=hours, workers=workers,
                large=n > CONFIRM_RUNS or hours > CONFIRM_HOURS)


def describe_estimate(cost):
    """'12 runs, 48,000 training steps at most, about 2.39 TFLOP, roughly 1 min on 2 worker(s) (...)'."""
    return (f"{cost['runs']:,} runs, {cost['steps']:,} training steps at most, about {cost['tflop']:.3g} TFLOP, "
            f"roughly {format_hours(cost['hours'])} on {cost['workers']} worker(s) (an upper-side guess)")


def format_hours(h):
    """'3 min' or '2.5 h'."""
    return f"{h:.1f} h" if h >= 1 else f"{max(1, round(h * 60))} min"


def execute(runs, out, scheduler=None, workers=None, retries=2, on_event=None, skip_failed=False, lock=True,
            profile=(), files=()):
    """Run [(name, TrainConfig)] into OUT; return {name: record} for every recorded run.

    scheduler: None for a local pool of ``workers`` processes (default: one per core), or a
    Dask scheduler address ('tcp://host:8786') or distributed.Client.
    on_event(kind, name, record): kind in started | done | reused (finished before this call) |
    retry | interrupted | progress; for
    progress (local pool only) the record is {step, steps, eval, rate[, eval_step, metric, loss]}.
    skip_failed: leave runs recorded as failed alone instead of retrying them.
    lock: hold OUT/.lock for the sweep's life (False when the caller already holds it).
    profile: names of runs whose record also gets their gradient profiles (run_task).
    files: the names the caller will write in OUT afterwards (its report), refused now if any
    is a link (fastrnn.fileio) rather than after hours of training.
    Raises Interrupted after a SIGINT/SIGTERM, once every run has stopped and what finished is
    recorded.
    """
    out = Path(out)
    with (FolderLock(out, what="out") if lock else contextlib.nullcontext()):
        fileio.check_folder(out, ["results.jsonl", *files])
        (out / "runs").mkdir(parents=True, exist_ok=True)
        fileio.check_folder(out / "runs")
        store = ResultStore(out)
        for name, cfg in runs:
            old = store.records.get(name)
            if old is not None and TrainConfig.normalized(old.get("config")) != cfg.to_dict():
                raise ValueError(f"out: {out} already holds run {name} with other options; use another --out "
                                 f"(finished runs are never overwritten)")
        on_event = on_event or (lambda *a: None)

        def finished(name):
            rec = store.records.get(name)
            return rec is not None and (rec.get("status") != "failed" or skip_failed)

        todo = [(n, c) for n, c in runs if not finished(n)]
        for name, _ in runs:
            if finished(name):
                on_event("reused", name, store.records[name])
        with StopFlag() as stopper:  # the loops below wind down at their next look
            if todo:
                if scheduler is None:
                    run_local(todo, out, store, workers or os.cpu_count() or 1, retries, on_event, stopper, profile)
                else:
                    run_dask(todo, out, store, scheduler, retries, on_event, stopper, profile)
        if stopper.signum is not None:
            raise Interrupted(stopper.signum)
        return {n: store.records[n] for n, _ in runs if n in store.records}

