"""A persistent thread pool and a parallel-for, in LLVM IR (Linux: pthreads and futex).

    void kc_parallel_for(ptr fn, ptr ctx, i64 count)   # fn(ctx, i) for i in [0, count)
    void kc_set_threads(i32 n)                         # n threads in all, the caller included
    i32  kc_get_threads()

Workers are started once (by ``kc_set_threads``) and never exit. The calling
thread posts a job and takes chunks itself; workers spin a while on the job
generation, then sleep on it with a futex, so an idle pool costs nothing and a
job posted during a training step starts in well under a microsecond.

Chunk i belongs to thread i mod T, so a loop over the same data puts the same
part on the same core at every call (its cache keeps it); a thread that is done
takes the unclaimed chunks of the others, so a late thread is not waited for.
Each thread's chunks are claimed with a compare-and-swap on its ticket, which
holds the job's generation in its high 32 bits and the count claimed in its low
32 bits, so a worker that arrives late from an earlier job can never claim a
chunk of the current one.
Only one job runs at a time: a parallel-for entered while another runs (from a
chunk, or from a second user thread) runs its chunks serially in its own thread.

A poster whose chunks are all claimed waits for the last ones to finish: it spins a
while, then sleeps on a futex of its own until the thread that finishes the last chunk
wakes it. It used to ``sched_yield`` at each check instead; under Linux's EEVDF
scheduler a yield moves the caller's deadline a whole slice later, so on a host with
other runnable jobs a poster that had waited 20 µs for a worker lost its core for one
or more slices (0.75-3 ms) even when the worker finished a microsecond later — the
LSTM's split loops wait so twice per step. A sleeping poster also leaves its core idle,
and the scheduler can move a worker that shares a core with another job onto it.

An idle worker on the core the poster last ran on spins with ``sched_yield``, not only
``pause``: on a loaded host Linux often wakes a sleeping worker onto its waker's core
(no core is idle), where it preempts the poster, runs the job's chunks alone, and then
spun out its idle time (300k cycle-counter ticks, 143 µs at this host's 2.1 GHz) on the
core the poster needed: the kernel after each of the LSTM's loops took 150-300 µs
instead of 5 at load 10 (``kcompile profile``, per call). On a core of its own it only
pauses: yielding there gives the core to another job's thread for a whole slice, and
the worker then misses the next job (measured: the LSTM's best steps 2 ms slower).
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.fpmode import flush_denormals
from kcompile.codegen.loops import I32, I64, PTR, abi_function, for_range, i64
from kcompile.ir import abi

MAX_THREADS = 256
TICKET_STRIDE = 8  # i64s: one cache line per thread's ticket
# How long an idle worker spins before it sleeps, in cycle-counter ticks (about 100 µs
# at 3 GHz): long enough to catch the next kernel of a step, short enough not to take
# a shared core from the Python code between steps.
SPIN_TICKS = 300_000
# How long the posting thread spins on unfinished chunks before it sleeps until the last
# one finishes (about 100 µs at this host's 2.1 GHz): longer than a product's chunks
# usually end apart, so a quiet machine rarely pays a wake-up (an idle vCPU halts, and
# waking it goes through the hypervisor), short against a late thread on a loaded one.
PARK_TICKS = 200_000
# The longest such sleep, in ns: a backstop against a lost wake-up, which the protocol
# excludes (``kc_pool_park_timeouts`` counts the sleeps that ran this long; tests: 0).
PARK_NS = 100_000_000
ETIMEDOUT = 110
SYS_FUTEX, FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 202, 128, 129
SYS_SCHED_YIELD = 24

BUSY = "kc_pool_busy"  # the pool's word that says a job runs (read by threads_for_a_job)
PARKS, PARK_TIMEOUTS = "kc_pool_parks", "kc_pool_park_timeouts"  # counters, for tests
CHUNK_FN = ir.FunctionType(ir.VoidType(), [PTR, I64])
PARALLEL_FOR = ir.FunctionType(ir.VoidType(), [ir.PointerType(CHUNK_FN), PTR, I64])
# Typed, because llvmlite calls only through pointers that know their function type.
CHUNK_PTR = ir.PointerType(CHUNK_FN)


def _global(module: ir.Module, name: str, typ: ir.Type) -> ir.GlobalVariable:
    g = ir.GlobalVariable(module, typ, name)
    g.linkage = "internal"
    g.initializer = ir.Constant(typ, None)
    g.align = 64  # one cache line each: the counters are written by different threads
    g.type = ir.PointerType(typ)  # typed, as llvmlite's atomic store wants
    return g


class _Pool:
    """The pool's shared words and the C functions it calls."""

    def __init__(self, module: ir.Module) -> None:
        self.module = module
        self.gen = _global(module, "kc_pool_gen", I32)  # futex word: bumped per job
        self.sleepers = _global(module, "kc_pool_sleepers", I32)
        # One ticket per thread, a cache line apart: the job's generation in the high
        # 32 bits, how many of that thread's chunks are claimed in the low 32.
        tickets = ir.ArrayType(I64, MAX_THREADS * TICKET_STRIDE)
        self.tickets = _global(module, "kc_pool_tickets", tickets)
        self.tickets.type = PTR
        self.team = _global(module, "kc_pool_team", I64)
        self.done = _global(module, "kc_pool_done", I64)
        self.fn = _global(module, "kc_pool_fn", CHUNK_PTR)
        self.ctx = _global(module, "kc_pool_ctx", I64)  # a pointer, as an integer
        self.count = _global(module, "kc_pool_count", I64)
        self.busy = _global(module, BUSY, I32)  # nonzero while a job runs
        self.threads = _global(module, "kc_pool_threads", I32)
        self.started = _global(module, "kc_pool_started", I32)
        # Futex word: 1 while the poster sleeps (or is about to) on unfinished chunks.
        self.parked = _global(module, "kc_pool_parked", I32)
        # How often the poster slept so, and how many of those sleeps timed out.
        self.parks = _global(module, PARKS, I64)
        self.park_timeouts = _global(module, PARK_TIMEOUTS, I64)
        self.errno = ir.Function(module, ir.FunctionType(PTR, []), "__errno_location")
        # The CPU the poster last ran on (``sched_getcpu``): an idle worker on that CPU
        # yields it.
        self.poster_cpu = _global(module, "kc_pool_poster_cpu", I32)
        self.getcpu = ir.Function(module, ir.FunctionType(I32, []), "sched_getcpu")
        self.syscall = ir.Function(module, ir.FunctionType(I64, [I64], var_arg=True), "syscall")
        self.pthread_create = ir.Function(
            module, ir.FunctionType(I32, [PTR, PTR, PTR, PTR]), "pthread_create"
        )
        self.pause = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
        self.clock = ir.Function(module, ir.FunctionType(I64, []), "llvm.readcyclecounter")

    def load(self, b: ir.IRBuilder, g: ir.GlobalVariable, ordering: str = "acquire"):
        return b.load_atomic(g, ordering, _size(g.value_type), typ=g.value_type)

    def store(self, b: ir.IRBuilder, g: ir.GlobalVariable, value, ordering="release") -> None:
        b.store_atomic(value, g, ordering, _size(g.value_type))

    def futex(self, b: ir.IRBuilder, op: int, value: ir.Value, word=None, timeout=None):
        word = self.gen if word is None else word
        timeout = ir.Constant(PTR, None) if timeout is None else timeout
        return b.call(self.syscall, [i64(SYS_FUTEX), word, ir.Constant(I32, op), value, timeout])


def _size(t: ir.Type) -> int:
    return 8 if isinstance(t, ir.PointerType) else t.width // 8


def _run_chunks(pool: _Pool) -> ir.Function:
    """``void run(i32 gen, i64 me)``: as participant ``me`` of job ``gen``, run the own
    chunks ``me, me + T, me + 2T, ...`` (T threads), then any still unclaimed chunk of
    the others."""
    fn = ir.Function(pool.module, ir.FunctionType(ir.VoidType(), [I32, I64]), "kc_pool_run")
    fn.linkage = "internal"
    gen, me = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    tag = b.shl(b.zext(gen, I64), i64(32))
    # Read once; if they belong to a later job, every swap below fails on the tag.
    team = pool.load(b, pool.team, "monotonic")
    count = pool.load(b, pool.count, "monotonic")
    work = b.load_atomic(pool.fn, "monotonic", 8, typ=CHUNK_PTR)
    ctx = b.inttoptr(pool.load(b, pool.ctx, "monotonic"), PTR)
    with for_range(b, team, "victim") as q:
        owner = b.urem(b.add(me, q), team)
        ticket = b.gep(pool.tickets, [b.mul(owner, i64(TICKET_STRIDE))], source_etype=I64)
        claim, check, swap, run, out = (
            fn.append_basic_block(n) for n in ("claim", "check", "swap", "run", "next")
        )
        b.branch(claim)
        b.position_at_end(claim)
        v = b.load_atomic(ticket, "acquire", 8, typ=I64)
        b.cbranch(b.icmp_unsigned("==", b.and_(v, i64(-1 << 32)), tag), check, out)
        b.position_at_end(check)
        chunk = b.add(owner, b.mul(b.and_(v, i64(0xFFFFFFFF)), team))
        b.cbranch(b.icmp_signed("<", chunk, count), swap, out)
        b.position_at_end(swap)
        swapped = b.cmpxchg(ticket, v, b.add(v, i64(1)), "acq_rel", "acquire")
        b.cbranch(b.extract_value(swapped, 1), run, claim)
        b.position_at_end(run)
        b.call(work, [ctx, chunk])
        finished = b.atomic_rmw("add", pool.done, i64(1), "seq_cst")
        # The last chunk: wake the poster if it sleeps. It sets its word before it reads
        # ``done`` and this thread adds to ``done`` before it reads the word (both
        # sequentially consistent), so one of them sees the other; the exchange makes its
        # futex wait return at once if it has not slept yet.
        with b.if_then(b.icmp_signed("==", b.add(finished, i64(1)), count)):
            sleeping = b.atomic_rmw("xchg", pool.parked, ir.Constant(I32, 0), "seq_cst")
            with b.if_then(b.icmp_unsigned("!=", sleeping, ir.Constant(I32, 0))):
                pool.futex(b, FUTEX_WAKE_PRIVATE, ir.Constant(I32, 1), pool.parked)
        b.branch(claim)
        b.position_at_end(out)
    b.ret_void()
    return fn


def _worker(pool: _Pool, run: ir.Function) -> ir.Function:
    """``ptr worker(ptr id)``: wait for each job, then take part if ``id`` is among the
    active threads."""
    fn = ir.Function(pool.module, ir.FunctionType(PTR, [PTR]), "kc_pool_worker")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    flush_denormals(b)  # a worker runs only compiled code: for good
    # The argument holds the thread's index and, in its high 32 bits, the generation of
    # the last job posted before the thread was made: a job posted before the thread
    # first runs is then one it has not seen (read here, it would be taken for one done).
    arg = b.ptrtoint(fn.args[0], I64)
    me = b.trunc(arg, I32)
    seen_slot = b.alloca(I32, name="seen")
    since_slot = b.alloca(I64, name="idle_since")
    b.store(b.trunc(b.lshr(arg, i64(32)), I32), seen_slot)
    wait, spin, sleep, job, take = (
        fn.append_basic_block(n) for n in ("wait", "spin", "sleep", "job", "take")
    )
    b.store(b.call(pool.clock, []), since_slot)
    b.branch(wait)
    b.position_at_end(wait)
    seen = b.load(seen_slot, typ=I32)
    b.cbranch(b.icmp_unsigned("!=", pool.load(b, pool.gen), seen), job, spin)
    b.position_at_end(spin)
    idle = b.sub(b.call(pool.clock, []), b.load(since_slot, typ=I64))
    keep_spinning = fn.append_basic_block("keep_spinning")
    b.cbranch(b.icmp_unsigned("<", idle, i64(SPIN_TICKS)), keep_spinning, sleep)
    b.position_at_end(keep_spinning)
    b.call(pool.pause, [])
    # On the poster's core an idle worker yields it (module docstring); elsewhere it
    # keeps its own, so that it is running when the next job comes.
    here = b.call(pool.getcpu, [])
    with b.if_then(b.icmp_signed("==", here, pool.load(b, pool.poster_cpu, "monotonic"))):
        b.call(pool.syscall, [i64(SYS_SCHED_YIELD)])
    b.branch(wait)
    b.position_at_end(sleep)
    # Announce the sleep before checking once more: the poster bumps the generation and
    # then reads the sleepers (both sequentially consistent), so one of us sees the other.
    b.atomic_rmw("add", pool.sleepers, ir.Constant(I32, 1), "seq_cst")
    still = b.icmp_unsigned("==", pool.load(b, pool.gen, "seq_cst"), seen)
    with b.if_then(still):
        pool.futex(b, FUTEX_WAIT_PRIVATE, seen)
    b.atomic_rmw("sub", pool.sleepers, ir.Constant(I32, 1), "seq_cst")
    b.branch(wait)
    b.position_at_end(job)
    gen = pool.load(b, pool.gen)
    b.store(gen, seen_slot)
    team = b.trunc(pool.load(b, pool.team, "monotonic"), I32)
    active = b.icmp_unsigned("<", b.add(me, ir.Constant(I32, 1)), team)
    b.cbranch(active, take, wait)
    b.position_at_end(take)
    b.call(run, [gen, b.add(b.zext(me, I64), i64(1))])
    b.store(b.call(pool.clock, []), since_slot)
    b.branch(wait)
    return fn


def _parallel_for(pool: _Pool, run: ir.Function) -> ir.Function:
    fn = ir.Function(pool.module, PARALLEL_FOR, abi.PARALLEL_FOR.symbol)
    work, ctx, count = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    serial, post = fn.append_basic_block("serial"), fn.append_basic_block("post")
    few = b.icmp_signed("<=", count, i64(1))
    alone = b.icmp_unsigned("<=", pool.load(b, pool.threads, "monotonic"), ir.Constant(I32, 1))
    with b.if_then(b.or_(few, alone)):
        b.branch(serial)
    claimed = b.cmpxchg(pool.busy, ir.Constant(I32, 0), ir.Constant(I32, 1), "acquire", "monotonic")
    b.cbranch(b.extract_value(claimed, 1), post, serial)

    b.position_at_end(serial)
    with for_range(b, count, "chunk") as i:
        b.call(work, [ctx, i])
    b.ret_void()

    b.position_at_end(post)
    gen = b.add(pool.load(b, pool.gen, "monotonic"), ir.Constant(I32, 1))
    team = b.zext(pool.load(b, pool.threads, "monotonic"), I64)
    pool.store(b, pool.done, i64(0), "monotonic")
    # Tickets first: a worker still in the last job then fails every swap, whichever
    # job's fields it reads.
    with for_range(b, team, "retag") as p:
        ticket = b.gep(pool.tickets, [b.mul(p, i64(TICKET_STRIDE))], source_etype=I64)
        b.atomic_rmw("xchg", ticket, b.shl(b.zext(gen, I64), i64(32)), "release")
    pool.store(b, pool.fn, work, "monotonic")
    pool.store(b, pool.ctx, b.ptrtoint(ctx, I64), "monotonic")
    pool.store(b, pool.count, count, "monotonic")
    pool.store(b, pool.team, team, "monotonic")
    pool.store(b, pool.poster_cpu, b.call(pool.getcpu, []), "monotonic")
    pool.store(b, pool.gen, gen, "seq_cst")
    with b.if_then(
        b.icmp_unsigned("!=", pool.load(b, pool.sleepers, "seq_cst"), ir.Constant(I32, 0))
    ):
        pool.futex(b, FUTEX_WAKE_PRIVATE, ir.Constant(I32, 0x7FFFFFFF))
    b.call(run, [gen, i64(0)])
    # Waiting for a thread that is still running a chunk: spin a while, then sleep until
    # the thread that finishes the last chunk wakes us (the module's docstring: why not
    # yield). On a machine with more runnable threads than cores the chunk's thread may
    # be waiting for this very core.
    timeout = _timespec(b, fn, PARK_NS)
    started = b.call(pool.clock, [])
    wait, idle, finished = (fn.append_basic_block(n) for n in ("wait", "idle", "finished"))
    b.branch(wait)
    b.position_at_end(wait)
    b.call(pool.pause, [])
    b.cbranch(b.icmp_signed(">=", pool.load(b, pool.done), count), finished, idle)
    b.position_at_end(idle)
    waited = b.sub(b.call(pool.clock, []), started)
    with b.if_then(b.icmp_unsigned(">", waited, i64(PARK_TICKS))):
        pool.store(b, pool.parked, ir.Constant(I32, 1), "seq_cst")
        late = b.icmp_signed("<", pool.load(b, pool.done, "seq_cst"), count)
        with b.if_then(late):
            b.atomic_rmw("add", pool.parks, i64(1), "monotonic")
            slept = pool.futex(b, FUTEX_WAIT_PRIVATE, ir.Constant(I32, 1), pool.parked, timeout)
            error = b.load(b.call(pool.errno, []), typ=I32)
            timed_out = b.and_(
                b.icmp_signed("<", slept, i64(0)),
                b.icmp_signed("==", error, ir.Constant(I32, ETIMEDOUT)),
            )
            with b.if_then(timed_out):
                b.atomic_rmw("add", pool.park_timeouts, i64(1), "monotonic")
        pool.store(b, pool.parked, ir.Constant(I32, 0), "monotonic")
    b.branch(wait)
    b.position_at_end(finished)
    pool.store(b, pool.poster_cpu, b.call(pool.getcpu, []), "monotonic")
    pool.store(b, pool.busy, ir.Constant(I32, 0))
    b.ret_void()
    return fn


def _timespec(b: ir.IRBuilder, fn: ir.Function, ns: int) -> ir.Value:
    """A ``struct timespec`` of ``ns`` nanoseconds on ``fn``'s stack (made in its entry)."""
    here = b.block
    b.position_at_start(fn.entry_basic_block)
    spec = b.alloca(ir.ArrayType(I64, 2), name="timespec")
    spec.type = PTR
    b.position_at_end(here)
    b.store(i64(ns // 1_000_000_000), b.gep(spec, [i64(0)], source_etype=I64))
    b.store(i64(ns % 1_000_000_000), b.gep(spec, [i64(1)], source_etype=I64))
    return spec


def _set_threads(pool: _Pool, worker: ir.Function) -> None:
    """``void kc_set_threads(i32 n)``: start workers up to ``n - 1`` (never fewer than
    already run) and let ``n`` threads take part in each job."""
    fn = abi_function(pool.module, abi.SET_THREADS)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    n = fn.args[0]
    n = b.select(b.icmp_signed("<", n, ir.Constant(I32, 1)), ir.Constant(I32, 1), n)
    n = b.select(
        b.icmp_signed(">", n, ir.Constant(I32, MAX_THREADS)), ir.Constant(I32, MAX_THREADS), n
    )
    tid = b.alloca(I64, name="tid")
    started = b.zext(pool.load(b, pool.started), I64)
    wanted = b.zext(b.sub(n, ir.Constant(I32, 1)), I64)
    with for_range(b, b.sub(wanted, started), "start") as i:
        me = b.add(started, i)
        arg = b.or_(me, b.shl(b.zext(pool.load(b, pool.gen), I64), i64(32)))
        b.call(pool.pthread_create, [tid, ir.Constant(PTR, None), worker, b.inttoptr(arg, PTR)])
    more = b.icmp_unsigned(">", wanted, started)
    pool.store(b, pool.started, b.trunc(b.select(more, wanted, started), I32))
    pool.store(b, pool.threads, n)
    b.ret_void()
    get = abi_function(pool.module, abi.GET_THREADS)
    b = ir.IRBuilder(get.append_basic_block("entry"))
    b.ret(pool.load(b, pool.threads))


def add_thread_pool(module: ir.Module) -> None:
    """Define ``kc_parallel_for``, ``kc_set_threads`` and ``kc_get_threads`` in ``module``."""
    pool = _Pool(module)
    run = _run_chunks(pool)
    worker = _worker(pool, run)
    _parallel_for(pool, run)
    _set_threads(pool, worker)


def threads_for_a_job(module: ir.Module, b: ir.IRBuilder) -> ir.Value:
    """The threads a parallel-for posted now would run on, as an i64: the pool's, or one
    while a job runs (a product inside a scan's per-slice loop runs its chunks serially,
    so it should be planned for one thread: no split-K partial sums to add up). For
    runtime code, which is defined in the pool's module."""
    busy = module.globals[BUSY]
    running = b.load_atomic(busy, "monotonic", 4, typ=I32)
    threads = b.zext(b.call(module.globals[abi.GET_THREADS.symbol], []), I64)
    return b.select(b.icmp_unsigned("!=", running, ir.Constant(I32, 0)), i64(1), threads)


def declare_parallel_for(module: ir.Module) -> ir.Function:
    """The pool's parallel-for as an external function of a model's module."""
    existing = module.globals.get(abi.PARALLEL_FOR.symbol)
    if existing is not None:
        return existing
    return ir.Function(module, PARALLEL_FOR, abi.PARALLEL_FOR.symbol)


# A loop is split among the threads when it has at least this much work (elements,
# weighted by their cost), into CHUNKS chunks: more than the threads, so a slow thread
# is not waited for.
PARALLEL_MIN_WORK = 1 << 15
CHUNKS = 8


def chunk_count(b: ir.IRBuilder, work: ir.Value, most: ir.Value | None = None) -> ir.Value:
    """How many chunks a loop of ``work`` runs in: ``CHUNKS`` from ``PARALLEL_MIN_WORK``
    on, else 1; never more than ``most``."""
    big = b.icmp_signed(">=", work, i64(PARALLEL_MIN_WORK))
    chunks = b.select(big, i64(CHUNKS), i64(1))
    if most is not None:
        chunks = b.select(b.icmp_signed("<", most, chunks), most, chunks)
    return chunks
