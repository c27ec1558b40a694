using System.Globalization;
using System.Runtime.CompilerServices;
using KernelDsl.Native;

namespace KernelDsl;

/// <summary>
/// One rank of an NCCL communicator, on one GPU: one rank per GPU and process or per GPU and thread
/// (<see cref="InitRank"/>), or all of one process's GPUs at once (<see cref="InitAll"/>). Transfers are queued on a
/// stream of the rank's device and move bytes (no reductions are bound). Ranks that join one by one are nonblocking
/// communicators, so no call waits inside NCCL: joining, <see cref="Wait"/> and <see cref="Dispose"/> poll, and past
/// <see cref="Timeout"/>, or on an error NCCL reports for the communicator (a failed peer: ncclRemoteError), abort it
/// and throw <see cref="NcclException"/>. Use a communicator from one thread at a time.
/// </summary>
public sealed unsafe class NcclCommunicator : IDisposable
{
    /// <summary>The timeout when none is given: PyTorch's default for its NCCL process groups.</summary>
    public static TimeSpan DefaultTimeout { get; } = TimeSpan.FromMinutes(10);

    private nint _comm;

    /// <summary>How deep this thread is inside <see cref="Group"/>: there, a failed call is recorded, not aborted.</summary>
    [ThreadStatic]
    private static int t_groupDepth;

    /// <summary>The first call of this rank that failed inside the current group, settled once the group has ended.</summary>
    private (NcclResult Result, string Operation)? _groupFailure;

    private NcclCommunicator(nint comm, CudaDevice device, int ranks, int rank, TimeSpan timeout)
    {
        (_comm, Device, Ranks, Rank, _timeout) = (comm, device, ranks, rank, timeout);
    }

    /// <summary>The GPU this rank runs on.</summary>
    public CudaDevice Device { get; }

    /// <summary>How many ranks the communicator has.</summary>
    public int Ranks { get; }

    /// <summary>This rank, in [0, Ranks).</summary>
    public int Rank { get; }

    private TimeSpan _timeout;

    /// <summary>
    /// How long joining, <see cref="Wait"/> and <see cref="Dispose"/> wait for the other ranks before aborting. Settable
    /// after joining, so calls may wait less (or more) than the join did.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to zero or less (other than <see cref="System.Threading.Timeout.InfiniteTimeSpan"/>).</exception>
    public TimeSpan Timeout
    {
        get => _timeout;
        set => _timeout = NcclArguments.Timeout(value);
    }

    /// <summary>Whether <see cref="Abort"/> or <see cref="Dispose"/> has released the communicator (a failed wait aborts it).</summary>
    public bool IsClosed => _comm == 0;

    /// <summary>A new communicator's id (<c>ncclGetUniqueId</c>), to be given to every rank that joins it; one rank makes it.</summary>
    /// <exception cref="DllNotFoundException">NCCL is not installed (or too old); the message says what to install or set.</exception>
    public static NcclUniqueId CreateUniqueId()
    {
        Nccl.Load();
        NcclException.Check(NcclApi.ncclGetUniqueId(out var id), "Creating an NCCL unique id");
        return NcclUniqueId.FromNative(id);
    }

    /// <summary>
    /// Joins the communicator <paramref name="id"/> as rank <paramref name="rank"/> of <paramref name="ranks"/>, on
    /// <paramref name="device"/>. Every rank must call this with the same id and rank count (from its own process or
    /// thread); it returns once all have joined.
    /// </summary>
    /// <exception cref="NcclException">NCCL failed, or not every rank joined within the timeout (<see cref="NcclResult.Timeout"/>): one may have failed, or joined with another id or rank count.</exception>
    public static NcclCommunicator InitRank(CudaDevice device, NcclUniqueId id, int ranks, int rank, TimeSpan? timeout = null)
    {
        NcclArguments.Ranks(ranks);
        NcclArguments.Rank(rank, ranks, nameof(rank));
        var wait = NcclArguments.Timeout(timeout);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(id);
        Nccl.Load();
        var operation = Describe(rank, ranks, device, "Joining the communicator");
        device.MakeCurrent();
        var config = NcclConfig.Nonblocking;
        var result = NcclApi.ncclCommInitRankConfig(out var comm, ranks, id.ToNative(), rank, &config);
        if (comm == 0)
        {
            throw new NcclException(result is NcclResult.Success or NcclResult.InProgress ? NcclResult.InternalError : result, operation, NcclException.LastError(0));
        }
        var communicator = new NcclCommunicator(comm, device, ranks, rank, wait);
        communicator.Complete(result, operation,
            $"Not every rank joined within {wait}: one may have failed, or joined with another id or another rank count than {ranks}.");
        return communicator;
    }

    /// <summary>
    /// One communicator over <paramref name="devices"/> in this process (<c>ncclCommInitAll</c>), rank i on devices[i].
    /// Its ranks are then driven from one thread: queue their transfers inside <see cref="Group"/>.
    /// </summary>
    public static NcclCommunicator[] InitAll(IReadOnlyList<CudaDevice> devices, TimeSpan? timeout = null)
    {
        CheckDevices(devices);
        var wait = NcclArguments.Timeout(timeout);
        Nccl.Load();
        var comms = new nint[devices.Count];
        var ordinals = devices.Select(d => d.Ordinal).ToArray();
        devices[0].MakeCurrent();
        fixed (nint* handles = comms)
        fixed (int* list = ordinals)
        {
            NcclException.Check(NcclApi.ncclCommInitAll(handles, devices.Count, list),
                $"Creating one communicator over devices {string.Join(", ", ordinals)}");
        }
        return devices.Select((d, i) => new NcclCommunicator(comms[i], d, devices.Count, i, wait)).ToArray();
    }

    /// <summary>
    /// One communicator over <paramref name="devices"/> in this process, rank i on devices[i], every rank joining from a
    /// thread of its own as <see cref="InitRank"/> does: nonblocking communicators, each to be driven from its own thread,
    /// with the timeouts (<see cref="InitAll"/>'s block). If a rank fails to join, the others are aborted and its error is thrown.
    /// </summary>
    public static NcclCommunicator[] InitRanks(IReadOnlyList<CudaDevice> devices, TimeSpan? timeout = null)
    {
        CheckDevices(devices);
        NcclArguments.Timeout(timeout);
        var id = CreateUniqueId();
        // Each join waits for all the others, so each needs a thread of its own.
        var joins = devices.Select((device, rank) => Task.Factory.StartNew(() => InitRank(device, id, devices.Count, rank, timeout),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        try
        {
            Task.WaitAll(joins);
        }
        catch (AggregateException)
        {
            foreach (var joined in joins.Where(j => j.IsCompletedSuccessfully))
            {
                joined.Result.Abort();
            }
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(joins.First(j => j.IsFaulted).Exception!.InnerException!);
        }
        return joins.Select(j => j.Result).ToArray();
    }

    /// <summary>
    /// Queues, on <paramref name="stream"/>, sending <paramref name="count"/> elements of <paramref name="source"/> from
    /// <paramref name="offset"/> to rank <paramref name="peer"/>, which must queue the matching <see cref="Receive"/>.
    /// Outside a <see cref="Group"/> a send waits on the GPU for its receive: pair sends and receives in one group.
    /// </summary>
    public void Send<T>(CudaStream stream, DeviceBuffer<T> source, long offset, long count, int peer) where T : unmanaged
    {
        CheckTransfer(stream, source, offset, count, peer, nameof(source));
        Device.MakeCurrent();
        Queued(NcclApi.ncclSend(Address(source, offset), Bytes<T>(count), NcclDataType.Uint8, peer, _comm, stream.Handle), Describe($"Sending {count} elements to rank {peer}"));
    }

    /// <summary>Queues receiving <paramref name="count"/> elements from rank <paramref name="peer"/> into <paramref name="destination"/> at <paramref name="offset"/>.</summary>
    public void Receive<T>(CudaStream stream, DeviceBuffer<T> destination, long offset, long count, int peer) where T : unmanaged
    {
        CheckTransfer(stream, destination, offset, count, peer, nameof(destination));
        Device.MakeCurrent();
        Queued(NcclApi.ncclRecv(Address(destination, offset), Bytes<T>(count), NcclDataType.Uint8, peer, _comm, stream.Handle), Describe($"Receiving {count} elements from rank {peer}"));
    }

    /// <summary>Queues gathering every rank's first <paramref name="count"/> elements of <paramref name="source"/> into <paramref name="destination"/>, rank r's at r·count.</summary>
    public void AllGather<T>(CudaStream stream, DeviceBuffer<T> source, DeviceBuffer<T> destination, long count) where T : unmanaged
    {
        CheckStream(stream);
        CheckBuffer(source, nameof(source));
        CheckBuffer(destination, nameof(destination));
        NcclArguments.Span(source.Length, 0, count, nameof(source));
        NcclArguments.Blocks(destination.Length, count, Ranks, nameof(destination));
        Device.MakeCurrent();
        Queued(NcclApi.ncclAllGather(source.DevicePointer, destination.DevicePointer, Bytes<T>(count), NcclDataType.Uint8, _comm, stream.Handle),
            Describe($"Gathering {count} elements from every rank"));
    }

    /// <summary>
    /// Queues an all-to-all as grouped sends and receives: block p (elements [p·count, (p+1)·count)) of
    /// <paramref name="source"/> goes to rank p, and rank p's block for this rank lands in block p of <paramref name="destination"/>.
    /// </summary>
    public void AllToAll<T>(CudaStream stream, DeviceBuffer<T> source, DeviceBuffer<T> destination, long countPerRank) where T : unmanaged
    {
        CheckStream(stream);
        CheckBuffer(source, nameof(source));
        CheckBuffer(destination, nameof(destination));
        NcclArguments.Blocks(source.Length, countPerRank, Ranks, nameof(source));
        NcclArguments.Blocks(destination.Length, countPerRank, Ranks, nameof(destination));
        Group([this], () =>
        {
            for (var peer = 0; peer < Ranks; peer++)
            {
                Send(stream, source, peer * countPerRank, countPerRank, peer);
                Receive(stream, destination, peer * countPerRank, countPerRank, peer);
            }
        });
    }

    /// <summary>
    /// Queues <paramref name="enqueue"/>'s transfers as one NCCL group (<c>ncclGroupStart</c>/<c>ncclGroupEnd</c>): sends and
    /// receives in one group do not wait for each other, and one thread driving several ranks must group their transfers.
    /// <paramref name="members"/> are the communicators the group uses, whose completion is then awaited for the call.
    /// </summary>
    public static void Group(IReadOnlyCollection<NcclCommunicator> members, Action enqueue)
    {
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(enqueue);
        if (members.Count == 0 || members.Any(m => m is null))
        {
            throw new ArgumentException("A group names the communicators it uses: at least one, none null.", nameof(members));
        }
        Nccl.Load();
        NcclException.Check(NcclApi.ncclGroupStart(), "Starting an NCCL group");
        t_groupDepth++;
        System.Runtime.ExceptionServices.ExceptionDispatchInfo? queueing = null;
        NcclResult ended;
        try
        {
            enqueue();
        }
        catch (Exception e)
        {
            queueing = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e);
        }
        finally
        {
            t_groupDepth--;
            // A group is ended even when queueing failed; NCCL reports what it could not launch. Nothing was aborted
            // inside it: ncclCommAbort would free a communicator whose tasks the group still holds.
            ended = NcclApi.ncclGroupEnd();
        }
        if (t_groupDepth > 0)
        {
            // Nested: the outermost group settles.
            queueing?.Throw();
            return;
        }
        try
        {
            queueing?.Throw();
            foreach (var member in members)
            {
                if (member._groupFailure is { } failure)
                {
                    member.Fail(failure.Result, failure.Operation);
                }
            }
            foreach (var member in members)
            {
                member.Complete(ended, member.Describe("Ending an NCCL group"));
            }
        }
        catch
        {
            // The group's transfers no longer match the peers' on any member.
            foreach (var member in members)
            {
                member.Abort();
            }
            throw;
        }
        finally
        {
            foreach (var member in members)
            {
                member._groupFailure = null;
            }
        }
    }

    /// <summary>
    /// Waits until <paramref name="stream"/>'s work (this rank's transfers among it) has finished, polling NCCL for errors.
    /// A peer that failed, or a peer that never queues its side, ends the wait with <see cref="NcclException"/> after
    /// at most <see cref="Timeout"/>, and the communicator is aborted.
    /// </summary>
    public void Wait(CudaStream stream)
    {
        CheckStream(stream);
        var state = NcclResult.Success;
        var finished = NcclPolling.Until(() => Failed(state = AsyncError()) || stream.IsIdle(), Timeout);
        if (Failed(state))
        {
            Fail(state, Describe("Waiting for transfers"));
        }
        if (!finished)
        {
            Fail(NcclResult.Timeout, Describe("Waiting for transfers"), $"They did not finish within {Timeout}: a peer may have failed or not queued its side.");
        }
    }

    /// <summary>Throws <see cref="NcclException"/> (and aborts) if NCCL has reported an error for this communicator, e.g. a failed peer.</summary>
    public void ThrowIfFailed()
    {
        if (AsyncError() is var state && Failed(state))
        {
            Fail(state, Describe("Checking the communicator"));
        }
    }

    /// <summary>
    /// Abandons the communicator at once (<c>ncclCommAbort</c>): its queued work is cancelled, and peers waiting on this
    /// rank see an error instead of waiting for it. A rank that fails should abort, so the others do not hang.
    /// </summary>
    public void Abort()
    {
        var comm = Interlocked.Exchange(ref _comm, 0);
        if (comm != 0)
        {
            // With the device disposed, NCCL still holds the primary context through the CUDA runtime and sets its device itself.
            if (!Device.IsDisposed)
            {
                Device.MakeCurrent();
            }
            _ = NcclApi.ncclCommAbort(comm);
        }
    }

    /// <summary>
    /// Finishes this rank's queued work and frees the communicator; if that fails or takes longer than <see cref="Timeout"/>,
    /// aborts it instead (no exception: disposal must not hide the error that led to it).
    /// </summary>
    public void Dispose()
    {
        if (_comm == 0)
        {
            return;
        }
        if (Device.IsDisposed)
        {
            // Disposed out of order: finalizing needs the device's streams; abort still frees NCCL's resources.
            Abort();
            return;
        }
        Device.MakeCurrent();
        try
        {
            if (Settle(NcclApi.ncclCommFinalize(_comm)) == NcclResult.Success)
            {
                var comm = Interlocked.Exchange(ref _comm, 0);
                NcclException.Check(NcclApi.ncclCommDestroy(comm), Describe("Destroying the communicator"));
                return;
            }
        }
        catch (NcclException)
        {
        }
        Abort();
    }

    public override string ToString() => Describe("NCCL communicator");

    /// <summary>A queued call's result: settled at once outside a group; inside one, a failure is recorded for <see cref="Group"/> to settle after ncclGroupEnd.</summary>
    private void Queued(NcclResult result, string operation)
    {
        if (t_groupDepth == 0)
        {
            Complete(result, operation);
        }
        else if (Failed(result))
        {
            _groupFailure ??= (result, operation);
        }
    }

    /// <summary>
    /// Settles a call's result: success returns; anything else aborts the communicator and throws, past the timeout with
    /// <paramref name="late"/> as the reason.
    /// </summary>
    private void Complete(NcclResult result, string operation, string? late = null)
    {
        var settled = Settle(result);
        if (settled != NcclResult.Success)
        {
            Fail(settled, operation, settled == NcclResult.Timeout ? late ?? $"It did not finish within {Timeout}." : null);
        }
    }

    /// <summary>A call's final result: in progress (a nonblocking communicator) polls until it is not, or gives Timeout after <see cref="Timeout"/>.</summary>
    private NcclResult Settle(NcclResult result)
    {
        if (result != NcclResult.InProgress)
        {
            return result;
        }
        var state = NcclResult.InProgress;
        return NcclPolling.Until(() => (state = AsyncError()) != NcclResult.InProgress, Timeout) ? state : NcclResult.Timeout;
    }

    private static bool Failed(NcclResult state) => state is not NcclResult.Success and not NcclResult.InProgress;

    private NcclResult AsyncError()
    {
        ObjectDisposedException.ThrowIf(_comm == 0, this);
        NcclException.Check(NcclApi.ncclCommGetAsyncError(_comm, out var state), Describe("Reading the communicator's state"), _comm);
        return state;
    }

    /// <summary>Aborts (so peers are not left waiting on this rank) and throws, with NCCL's last error for the communicator.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Fail(NcclResult result, string operation, string? detail = null)
    {
        var last = _comm == 0 ? null : NcclException.LastError(_comm);
        Abort();
        throw new NcclException(result, operation, $"{detail}{(last is null ? "" : $" NCCL: {last}.")} The communicator was aborted.".Trim());
    }

    private static void CheckDevices(IReadOnlyList<CudaDevice> devices)
    {
        ArgumentNullException.ThrowIfNull(devices);
        if (devices.Any(d => d is null))
        {
            throw new ArgumentException("devices holds a null device.", nameof(devices));
        }
        NcclArguments.Devices(devices.Select(d => d.Ordinal).ToArray(), nameof(devices));
    }

    private void CheckTransfer<T>(CudaStream stream, DeviceBuffer<T> buffer, long offset, long count, int peer, string name) where T : unmanaged
    {
        CheckStream(stream);
        CheckBuffer(buffer, name);
        NcclArguments.Span(buffer.Length, offset, count, name);
        NcclArguments.Rank(peer, Ranks, nameof(peer));
    }

    private void CheckStream(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ObjectDisposedException.ThrowIf(_comm == 0, this);
        if (!ReferenceEquals(stream.Device, Device))
        {
            throw new ArgumentException($"stream is on device {stream.Device.Ordinal}; rank {Rank} runs on device {Device.Ordinal}.", nameof(stream));
        }
    }

    private void CheckBuffer<T>(DeviceBuffer<T> buffer, string name) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        if (!ReferenceEquals(buffer.Device, Device))
        {
            throw new ArgumentException($"{name} is on device {buffer.Device.Ordinal}; rank {Rank} runs on device {Device.Ordinal}.", name);
        }
    }

    private static ulong Address<T>(DeviceBuffer<T> buffer, long offset) where T : unmanaged => buffer.DevicePointer + (ulong)(offset * Unsafe.SizeOf<T>());

    private static nuint Bytes<T>(long count) where T : unmanaged => (nuint)count * (nuint)Unsafe.SizeOf<T>();

    private string Describe(string operation) => Describe(Rank, Ranks, Device, operation);

    private static string Describe(int rank, int ranks, CudaDevice device, string operation) =>
        string.Create(CultureInfo.InvariantCulture, $"{operation} (rank {rank} of {ranks}, device {device.Ordinal})");
}
