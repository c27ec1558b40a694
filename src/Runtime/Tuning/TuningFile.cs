using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace KernelDsl;

/// <summary>
/// The on-disk form of one tuning decision, one UTF-8 JSON file per key named by the SHA-256 of the key:
/// <c>{"format":1,"key":"…","winner":"…","milliseconds":{"name":1.25,…},"tunedAt":"2026-…Z"}</c>.
/// A reader trusts a file only if it parses and every field checks out (format, the same key, a finite
/// non-negative time per candidate, a winner that is the fastest of them).
/// </summary>
internal static class TuningFile
{
    public const int FormatVersion = 1;
    public const string Folder = "autotune";
    public const string Extension = ".json";

    /// <summary>The file name (no folder) for a key.</summary>
    public static string NameOf(string key) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key))) + Extension;

    public static byte[] Encode(TuningResult result) => JsonSerializer.SerializeToUtf8Bytes(
        new TuningFileContents
        {
            Format = FormatVersion,
            Key = result.Key,
            Winner = result.Winner,
            Milliseconds = new Dictionary<string, double>(result.Milliseconds, StringComparer.Ordinal),
            TunedAt = result.TunedAt,
        },
        TuningJsonContext.Default.TuningFileContents);

    /// <summary>The decision stored in <paramref name="bytes"/> for <paramref name="key"/>, or null with the <paramref name="problem"/>.</summary>
    public static TuningResult? Decode(ReadOnlySpan<byte> bytes, string key, out string problem)
    {
        TuningFileContents? contents;
        try
        {
            contents = JsonSerializer.Deserialize(bytes, TuningJsonContext.Default.TuningFileContents);
        }
        catch (JsonException e)
        {
            problem = $"it is not valid JSON ({e.Message})";
            return null;
        }
        if (contents is null)
        {
            problem = "it holds no object";
            return null;
        }
        if (contents.Format != FormatVersion)
        {
            problem = $"its format is {contents.Format?.ToString() ?? "missing"}, not {FormatVersion}";
            return null;
        }
        if (!string.Equals(contents.Key, key, StringComparison.Ordinal))
        {
            problem = $"it is for key '{contents.Key}'";
            return null;
        }
        if (contents.Milliseconds is not { Count: > 0 } times)
        {
            problem = "it has no timings";
            return null;
        }
        foreach (var (name, time) in times)
        {
            if (string.IsNullOrEmpty(name) || !double.IsFinite(time) || time < 0)
            {
                problem = $"its timing '{name}' = {time} is not a finite non-negative number of milliseconds";
                return null;
            }
        }
        if (contents.Winner is not { Length: > 0 } winner || !times.TryGetValue(winner, out var best) || times.Values.Any(time => time < best))
        {
            problem = $"its winner '{contents.Winner}' is not the fastest of its timings";
            return null;
        }
        if (contents.TunedAt is not { } tunedAt)
        {
            problem = "it has no date";
            return null;
        }
        problem = "";
        return new TuningResult(key, winner, new Dictionary<string, double>(times, StringComparer.Ordinal), tunedAt, TuningSource.Disk);
    }
}

/// <summary>The JSON object of a tuning file; every member nullable so a file missing one is rejected, not defaulted.</summary>
internal sealed class TuningFileContents
{
    public int? Format { get; set; }
    public string? Key { get; set; }
    public string? Winner { get; set; }
    public Dictionary<string, double>? Milliseconds { get; set; }
    public DateTimeOffset? TunedAt { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(TuningFileContents))]
internal sealed partial class TuningJsonContext : JsonSerializerContext;
