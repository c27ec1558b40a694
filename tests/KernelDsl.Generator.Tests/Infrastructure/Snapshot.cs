using System.Runtime.CompilerServices;

namespace GeneratorTests.Infrastructure;

/// <summary>
/// Verify's conventions without Verify: <c>{name}.verified.{ext}</c> beside the test is the reviewed truth; a
/// mismatch writes <c>{name}.received.{ext}</c> and fails. Accepting is an explicit step: review the diff, then run
/// <c>scripts/accept-snapshots</c> (it renames received files to verified).
/// </summary>
public static class Snapshot
{
    public static void Verify(string actual, string name, string extension, [CallerFilePath] string callerFile = "")
    {
        if (Check(actual, name, extension, callerFile) is { } failure)
        {
            Assert.Fail(failure);
        }
    }

    /// <summary>Compares without failing: null when it matches, else what differs (the received file is written).</summary>
    public static string? Check(string actual, string name, string extension, [CallerFilePath] string callerFile = "")
    {
        var folder = Path.Combine(Path.GetDirectoryName(callerFile)!, "Snapshots");
        Directory.CreateDirectory(folder);
        var verified = Path.Combine(folder, $"{name}.verified.{extension}");
        var received = Path.Combine(folder, $"{name}.received.{extension}");
        actual = actual.Replace("\r\n", "\n");
        if (File.Exists(verified) && File.ReadAllText(verified).Replace("\r\n", "\n") == actual)
        {
            File.Delete(received);
            return null;
        }
        File.WriteAllText(received, actual);
        var reason = File.Exists(verified) ? FirstDifference(File.ReadAllText(verified).Replace("\r\n", "\n"), actual) : "no verified snapshot exists yet";
        return $"Snapshot {name}.{extension} differs ({reason}). Review {received}, then run scripts/accept-snapshots to accept it.";
    }

    private static string FirstDifference(string expected, string actual)
    {
        var e = expected.Split('\n');
        var a = actual.Split('\n');
        for (var i = 0; i < Math.Max(e.Length, a.Length); i++)
        {
            var left = i < e.Length ? e[i] : "<end>";
            var right = i < a.Length ? a[i] : "<end>";
            if (left != right)
            {
                return $"line {i + 1}: expected «{left}» but got «{right}»";
            }
        }
        return "line endings";
    }
}
