namespace KernelDsl.Attention.ContextParallel;

/// <summary>
/// A range of a device buffer that a rank sends to <see cref="Peer"/> or receives from it. Between two ranks, sends and
/// receives match in the order each lists them, as NCCL's grouped send and receive do.
/// </summary>
internal abstract class Transfer(int peer, long count)
{
    public int Peer { get; } = peer;

    /// <summary>Elements moved: the matching send and receive move as many.</summary>
    public long Count { get; } = count;

    public static Transfer Of<T>(DeviceBuffer<T> buffer, long offset, long count, int peer) where T : unmanaged => new Range<T>(buffer, offset, count, peer);

    public abstract void Send(NcclCommunicator communicator, CudaStream stream);

    public abstract void Receive(NcclCommunicator communicator, CudaStream stream);

    /// <summary>Queues, on <paramref name="stream"/>, copying this (a send) into <paramref name="receive"/>, the receive it matches.</summary>
    public abstract void CopyTo(CudaStream stream, Transfer receive);

    private sealed class Range<T>(DeviceBuffer<T> buffer, long offset, long count, int peer) : Transfer(peer, count) where T : unmanaged
    {
        public override void Send(NcclCommunicator communicator, CudaStream stream) => communicator.Send(stream, buffer, offset, Count, Peer);

        public override void Receive(NcclCommunicator communicator, CudaStream stream) => communicator.Receive(stream, buffer, offset, Count, Peer);

        public override void CopyTo(CudaStream stream, Transfer receive)
        {
            if (receive is not Range<T> target || target.Count != Count)
            {
                throw new InvalidOperationException($"A send of {Count} {typeof(T).Name} met a receive of {receive.Count} elements of another kind or count: the ranks' transfers do not match.");
            }
            stream.Copy(buffer, offset, target.Buffer, target.Offset, Count);
        }

        private DeviceBuffer<T> Buffer => buffer;

        private long Offset => offset;
    }
}

/// <summary>One rank's part of a group of transfers: its sends and receives, queued on <see cref="Stream"/>.</summary>
internal sealed record RankTransfers(int Rank, CudaStream Stream, IReadOnlyList<Transfer> Sends, IReadOnlyList<Transfer> Receives);

/// <summary>
/// How context-parallel ranks move data: NCCL's send and receive between GPUs, or device copies between ranks simulated on
/// one GPU. The schedules and the per-rank work are the same over either.
/// </summary>
internal interface IRankTransport
{
    /// <summary>
    /// Queues one group of transfers, each rank's on its stream: the ranks this caller drives (every rank when simulated,
    /// its own with NCCL). Once a rank's stream has passed the group, its receives have landed and its sends been taken.
    /// </summary>
    void Exchange(IReadOnlyList<RankTransfers> group);

    /// <summary>Waits until a stream of a rank this caller drives has finished, reporting a failed peer rather than waiting for it forever.</summary>
    void Wait(CudaStream stream);

    /// <summary>
    /// Every rank's <c>Values</c> (as many on each), indexed by rank, from the ranks this caller drives, each on its stream;
    /// returns once they are here. The streams then have nothing pending.
    /// </summary>
    long[][] AllGather(IReadOnlyList<(int Rank, CudaStream Stream, long[] Values)> mine);

    /// <summary>Abandons the transfers in flight after a failure, so waiting for the streams then ends at once.</summary>
    void Abort();
}

/// <summary>Ranks simulated on one GPU: a receive is a device copy from the send it matches.</summary>
internal sealed class SimulatedTransport : IRankTransport
{
    public void Exchange(IReadOnlyList<RankTransfers> group)
    {
        var pairs = TransferMatching.Match(group);
        var streams = group.ToDictionary(g => g.Rank, g => g.Stream);
        // A send's data is what its stream holds now; the copies run on the receivers' streams, and the senders' streams
        // then wait for them, as NCCL's send completes only once received. Every wait is on an event recorded first, so
        // none can wait on another in a cycle.
        var ready = group.ToDictionary(g => g.Rank, g => g.Stream.Record());
        var copied = new List<(int Sender, CudaEvent Event)>();
        try
        {
            foreach (var receiver in pairs.GroupBy(p => p.Receiver))
            {
                var stream = streams[receiver.Key];
                var senders = receiver.Select(p => p.Sender).Distinct().ToArray();
                foreach (var sender in senders)
                {
                    stream.Wait(ready[sender]);
                }
                foreach (var pair in receiver)
                {
                    pair.Send.CopyTo(stream, pair.Receive);
                }
                var done = stream.Record();
                copied.AddRange(senders.Select(s => (s, done)));
            }
            foreach (var (sender, done) in copied)
            {
                streams[sender].Wait(done);
            }
        }
        finally
        {
            // A wait already queued holds what it waits for; the events may go.
            foreach (var recorded in ready.Values.Concat(copied.Select(c => c.Event)).Distinct())
            {
                recorded.Dispose();
            }
        }
    }

    public void Wait(CudaStream stream) => stream.Synchronize();

    public long[][] AllGather(IReadOnlyList<(int Rank, CudaStream Stream, long[] Values)> mine)
    {
        if (!mine.Select(m => m.Rank).Order().SequenceEqual(Enumerable.Range(0, mine.Count)))
        {
            throw new InvalidOperationException("Simulated ranks gather from every rank at once.");
        }
        foreach (var (_, stream, _) in mine)
        {
            stream.Synchronize();
        }
        return mine.OrderBy(m => m.Rank).Select(m => m.Values).ToArray();
    }

    /// <summary>Nothing to abandon: every copy is between the ranks driven here, and each completes.</summary>
    public void Abort()
    {
    }
}

/// <summary>One rank of an NCCL communicator: its sends and receives as one NCCL group; waits poll, with the communicator's timeout.</summary>
internal sealed class NcclTransport(NcclCommunicator communicator) : IRankTransport
{
    public void Exchange(IReadOnlyList<RankTransfers> group)
    {
        if (group is not [var mine] || mine.Rank != communicator.Rank)
        {
            throw new InvalidOperationException($"An NCCL rank drives its own transfers only (rank {communicator.Rank}).");
        }
        NcclCommunicator.Group([communicator], () =>
        {
            foreach (var send in mine.Sends)
            {
                send.Send(communicator, mine.Stream);
            }
            foreach (var receive in mine.Receives)
            {
                receive.Receive(communicator, mine.Stream);
            }
        });
    }

    public void Wait(CudaStream stream)
    {
        if (!communicator.IsClosed)
        {
            communicator.Wait(stream);
        }
        // Aborted: NCCL cancelled its kernels; still, never wait past the timeout.
        else if (!NcclPolling.Until(stream.IsIdle, communicator.Timeout))
        {
            throw new TimeoutException($"A stream of rank {communicator.Rank} did not finish within {communicator.Timeout} after its communicator was aborted.");
        }
    }

    public long[][] AllGather(IReadOnlyList<(int Rank, CudaStream Stream, long[] Values)> mine)
    {
        if (mine is not [var (rank, stream, values)] || rank != communicator.Rank)
        {
            throw new InvalidOperationException($"An NCCL rank gathers its own values only (rank {communicator.Rank}).");
        }
        var device = communicator.Device;
        using var own = device.Allocate<long>(values.Length);
        using var all = device.Allocate<long>((long)values.Length * communicator.Ranks);
        // In the stream's order: DeviceBuffer's synchronous copies would run on the legacy default stream.
        stream.CopyToDevice(own, values);
        communicator.AllGather(stream, own, all, values.Length);
        communicator.Wait(stream);
        var gathered = new long[values.Length * communicator.Ranks];
        stream.CopyToHost(all, gathered);
        stream.Synchronize();
        return gathered.Chunk(values.Length).ToArray();
    }

    public void Abort() => communicator.Abort();
}

/// <summary>Which send each receive of a group takes, as NCCL pairs them; a group whose sides do not match is refused.</summary>
internal static class TransferMatching
{
    public static IReadOnlyList<(int Sender, int Receiver, Transfer Send, Transfer Receive)> Match(IReadOnlyList<RankTransfers> group)
    {
        ArgumentNullException.ThrowIfNull(group);
        var ranks = group.Select(g => g.Rank).ToHashSet();
        if (ranks.Count != group.Count)
        {
            throw new InvalidOperationException("A group lists a rank twice.");
        }
        if (group.SelectMany(g => g.Sends.Concat(g.Receives).Select(t => (g.Rank, t.Peer))).FirstOrDefault(x => !ranks.Contains(x.Peer)) is (var rank, var peer) && !ranks.Contains(peer))
        {
            throw new InvalidOperationException($"Rank {rank} exchanges with rank {peer}, which is not in the group: simulated ranks must all be in every group.");
        }
        var pairs = new List<(int, int, Transfer, Transfer)>();
        foreach (var sender in group)
        {
            foreach (var receiver in group)
            {
                var sends = sender.Sends.Where(s => s.Peer == receiver.Rank).ToArray();
                var receives = receiver.Receives.Where(r => r.Peer == sender.Rank).ToArray();
                if (sends.Length != receives.Length)
                {
                    throw new InvalidOperationException($"Rank {sender.Rank} sends {sends.Length} transfers to rank {receiver.Rank}, which receives {receives.Length} from it: NCCL would wait forever.");
                }
                pairs.AddRange(sends.Zip(receives, (s, r) => (sender.Rank, receiver.Rank, s, r)));
            }
        }
        return pairs;
    }
}
