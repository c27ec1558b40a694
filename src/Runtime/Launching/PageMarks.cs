namespace KernelDsl.Launching;

/// <summary>
/// Per-thread marks over a pool's pages (or a cache's staging slots) for the batch checks of the decode and append
/// launchers: is a page, or a slot, listed twice?
/// Each check reserves fresh stamps, so a mark left by an earlier check never matches and nothing is cleared between
/// checks: a check costs the entries it reads, not the pool's size.
/// </summary>
internal static class PageMarks
{
    [ThreadStatic] private static int[]? t_marks;
    [ThreadStatic] private static int t_stamp;

    /// <summary>
    /// The marks (at least <paramref name="pages"/> of them) and <paramref name="stamps"/> stamps no mark holds yet,
    /// <paramref name="first"/> to <paramref name="first"/> + <paramref name="stamps"/> − 1.
    /// </summary>
    public static int[] Reserve(int pages, int stamps, out int first)
    {
        var marks = t_marks;
        if (marks is null || marks.Length < pages)
        {
            t_marks = marks = new int[Math.Max(pages, 2 * (marks?.Length ?? 0))];
            t_stamp = 0;
        }
        if (t_stamp > int.MaxValue - stamps)
        {
            Array.Clear(marks);
            t_stamp = 0;
        }
        first = t_stamp + 1;
        t_stamp += stamps;
        return marks;
    }
}
