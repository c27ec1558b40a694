using Spectre.Console;

namespace KernelDsl.Cli;

/// <summary>
/// Rows as a Spectre table on a terminal wide enough for it, or as plain tab-separated lines (a header, then one line
/// per row) when piped, redirected or narrow: a table there wraps every cell into fragments, and grep, cut and awk need
/// whole rows. Plain lines are written past Spectre, which would wrap them too.
/// </summary>
internal static class CliTable
{
    /// <summary>Narrower than this, a table of long kernel names wraps its cells, so plain lines are printed instead.</summary>
    public const int MinimumWidth = 160;

    /// <summary>Whether the console is a terminal wide enough for a table.</summary>
    public static bool Fits => AnsiConsole.Profile.Out.IsTerminal && AnsiConsole.Profile.Width >= MinimumWidth;

    /// <summary>Rows whose cells may hold markup (a table) or plain text (lines, where line breaks in a cell become "; ").</summary>
    public static void Write(string[] columns, IReadOnlyList<string[]> rows, bool table)
    {
        if (table)
        {
            var grid = new Table().AddColumns(columns);
            foreach (var row in rows)
            {
                grid.AddRow(row.Select(Markup.Escape).ToArray());
            }
            AnsiConsole.Write(grid);
            return;
        }
        var writer = AnsiConsole.Profile.Out.Writer;
        writer.WriteLine(string.Join('\t', columns));
        foreach (var row in rows)
        {
            writer.WriteLine(string.Join('\t', row.Select(cell => cell.Replace("\n", "; "))));
        }
        writer.Flush();
    }
}
