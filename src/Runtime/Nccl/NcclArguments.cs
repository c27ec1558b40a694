namespace KernelDsl;

/// <summary>The checks NCCL calls make before anything reaches NCCL or the GPU (testable without either).</summary>
internal static class NcclArguments
{
    public static void Ranks(int ranks)
    {
        if (ranks < 1)
        {
            throw new ArgumentException($"ranks must be at least 1, got {ranks}.", nameof(ranks));
        }
    }

    /// <summary>A rank or peer index of a communicator of <paramref name="ranks"/> ranks.</summary>
    public static void Rank(int rank, int ranks, string name)
    {
        if (rank < 0 || rank >= ranks)
        {
            throw new ArgumentOutOfRangeException(name, rank, $"{name} must be in [0, {ranks}): the communicator has {ranks} ranks.");
        }
    }

    /// <summary>A positive timeout, or <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> to wait forever.</summary>
    public static TimeSpan Timeout(TimeSpan? timeout)
    {
        var value = timeout ?? NcclCommunicator.DefaultTimeout;
        return value > TimeSpan.Zero || value == System.Threading.Timeout.InfiniteTimeSpan ? value
            : throw new ArgumentOutOfRangeException(nameof(timeout), value, "timeout must be positive (or Timeout.InfiniteTimeSpan to wait forever).");
    }

    /// <summary><paramref name="count"/> elements from <paramref name="offset"/> lie inside a buffer of <paramref name="length"/>.</summary>
    public static void Span(long length, long offset, long count, string name)
    {
        if (offset < 0 || count < 0 || offset > length - count)
        {
            throw new ArgumentException($"{name}: {count} elements from element {offset} do not fit its {length} elements (offset and count must be non-negative, offset + count at most its length).", name);
        }
    }

    /// <summary>A buffer of <paramref name="length"/> elements holds one block of <paramref name="count"/> per rank (all-gather's destination, all-to-all's buffers).</summary>
    public static void Blocks(long length, long count, int ranks, string name)
    {
        if (count < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, "The count per rank must not be negative.");
        }
        if (count > length / ranks)
        {
            throw new ArgumentException($"{name} holds {length} elements; {ranks} ranks × {count} need {(Int128)count * ranks}.", name);
        }
    }

    /// <summary>The devices of a one-process communicator: at least one, each once.</summary>
    public static void Devices(IReadOnlyList<int> ordinals, string name)
    {
        if (ordinals.Count == 0)
        {
            throw new ArgumentException("A communicator needs at least one device.", name);
        }
        if (ordinals.Distinct().Count() != ordinals.Count)
        {
            throw new ArgumentException($"Each device may hold one rank: {name} lists device {ordinals.GroupBy(o => o).First(g => g.Count() > 1).Key} more than once.", name);
        }
    }
}
