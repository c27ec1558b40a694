using Spectre.Console;

namespace KernelDsl.Cli;

/// <summary>
/// A Spectre.Console progress bar over a list of work items, shown only on an interactive terminal: piped or
/// redirected output gets no progress lines (Spectre's fallback would print a line per update), only the results.
/// </summary>
internal static class CliProgress
{
    public static void Run<T>(string description, IReadOnlyList<T> items, Action<T> work)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            foreach (var item in items)
            {
                work(item);
            }
            return;
        }
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(progress =>
            {
                var task = progress.AddTask(Markup.Escape(description), maxValue: items.Count);
                foreach (var item in items)
                {
                    work(item);
                    task.Increment(1);
                }
            });
    }

    /// <summary>Runs <paramref name="work"/> under a spinner on an interactive terminal; silently otherwise.</summary>
    public static T Status<T>(string description, Func<T> work) =>
        AnsiConsole.Profile.Capabilities.Interactive ? AnsiConsole.Status().Start(Markup.Escape(description), _ => work()) : work();
}
