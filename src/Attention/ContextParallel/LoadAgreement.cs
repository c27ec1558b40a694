using System.Runtime.ExceptionServices;
using KernelDsl.Attention.FlashAttention;

namespace KernelDsl.Attention.ContextParallel;

/// <summary>
/// Every rank loads (copies, counts NaN/Inf, quantizes) before any transfer is posted, then the ranks share one outcome
/// each: a rank that failed alone would leave its peers waiting on transfers it never posts. A data error on one rank
/// (<see cref="NonFiniteInputException"/> naming the rank and input) or another failure then throws on every rank.
/// </summary>
internal static class LoadAgreement
{
    private const long Ok = 0, NonFinite = 1, Failed = 2;

    /// <summary>Each rank's load, its failure caught; every rank's outcome gathered; throws if any failed.</summary>
    public static void Run(IRankTransport transport, IReadOnlyList<(int Rank, CudaStream Stream, Action Load)> ranks)
    {
        var own = new Exception?[ranks.Count];
        foreach (var (index, rank) in ranks.Index())
        {
            try
            {
                rank.Load();
            }
            catch (Exception e)
            {
                own[index] = e;
            }
        }
        var gathered = transport.AllGather(ranks.Select((r, i) => (r.Rank, r.Stream, Encode(own[i]))).ToArray());
        // The ranks driven here throw as the first of them that failed, else as the first.
        var self = Array.FindIndex(own, e => e is not null) is var failed and >= 0 ? failed : 0;
        if (Outcome(gathered, ranks[self].Rank, own[self]) is { } error)
        {
            ExceptionDispatchInfo.Throw(error);
        }
    }

    /// <summary>A rank's outcome as the values gathered: kind, then the NaN/Inf counts of q, k and v.</summary>
    internal static long[] Encode(Exception? error) => error switch
    {
        null => [Ok, 0, 0, 0],
        NonFiniteInputException n => [NonFinite, n.QCount, n.KCount, n.VCount],
        _ => [Failed, 0, 0, 0],
    };

    /// <summary>
    /// What rank <paramref name="self"/> throws, given every rank's outcome (indexed by rank) and its own failure: a
    /// failure other than NaN/Inf as it was; else the first rank's with NaN/Inf (naming it) or other failure; null if none.
    /// </summary>
    internal static Exception? Outcome(IReadOnlyList<long[]> gathered, int self, Exception? own)
    {
        if (own is not null and not NonFiniteInputException)
        {
            return own;
        }
        var rank = gathered[self][0] != Ok ? self : Enumerable.Range(0, gathered.Count).FirstOrDefault(r => gathered[r][0] != Ok, -1);
        if (rank < 0)
        {
            return null;
        }
        var values = gathered[rank];
        return values[0] == NonFinite
            ? new NonFiniteInputException(values[1], values[2], values[3], rank, self)
            : new InvalidOperationException($"Rank {rank} failed loading its inputs, before any data moved (its own exception says why); rank {self} stops with it.");
    }
}
