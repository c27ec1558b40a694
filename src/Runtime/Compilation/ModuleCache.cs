using System.Diagnostics;

namespace KernelDsl;

/// <summary>
/// Compiled cubins, in memory and on disk. Entries are keyed by a SHA-256 of (source, options, arch, compiler
/// version), written to a temporary file and renamed into place, and verified on every read: a corrupt or
/// truncated entry is deleted and recompiled, never trusted. If the directory cannot be written, cubins stay in
/// memory and a <see cref="Warning"/> is raised. Concurrent first requests for one key compile once.
/// </summary>
public sealed class ModuleCache
{
    /// <summary>Environment variable that overrides the cache directory.</summary>
    public const string DirectoryVariable = "KERNELDSL_CACHE_DIR";

    private readonly OnceByKey<string, ModuleImage> _memory = new(StringComparer.Ordinal);
    private long _compilations;
    private long _memoryHits;
    private long _diskHits;
    private long _rejectedEntries;
    private long _warnings;
    private long _lastColdCompileTicks = -1;
    private long _lastWarmLoadTicks = -1;

    /// <summary>A cache that compiles with <paramref name="compiler"/> and keeps entries in <paramref name="directory"/> (null: memory only).</summary>
    public ModuleCache(IKernelCompiler compiler, string? directory)
    {
        ArgumentNullException.ThrowIfNull(compiler);
        Compiler = compiler;
        Directory = string.IsNullOrWhiteSpace(directory) ? null : Path.GetFullPath(directory);
    }

    /// <summary>Raised with a message when the cache falls back or drops an entry; without a handler it goes to <see cref="Trace"/>.</summary>
    public event EventHandler<string>? Warning;

    /// <summary>The compiler used on a miss.</summary>
    public IKernelCompiler Compiler { get; }

    /// <summary>Where entries are stored, or null for a memory-only cache.</summary>
    public string? Directory { get; }

    /// <summary>A snapshot of the counters.</summary>
    public ModuleCacheStatistics Statistics => new(
        Interlocked.Read(ref _compilations),
        Interlocked.Read(ref _memoryHits),
        Interlocked.Read(ref _diskHits),
        Interlocked.Read(ref _rejectedEntries),
        Interlocked.Read(ref _warnings),
        Duration(ref _lastColdCompileTicks),
        Duration(ref _lastWarmLoadTicks));

    /// <summary>
    /// The default directory: <c>$KERNELDSL_CACHE_DIR</c>, else <c>$XDG_CACHE_HOME/kerneldsl</c>, else
    /// <c>~/.cache/kerneldsl</c>; null when none can be determined.
    /// </summary>
    public static string? DefaultDirectory() =>
        DefaultDirectory(Environment.GetEnvironmentVariable, Environment.GetFolderPath(Environment.SpecialFolder.UserProfile));

    /// <summary>The cache key of <paramref name="request"/> for a compiler version, as lowercase hex.</summary>
    public static string KeyOf(NvrtcRequest request, NvrtcVersion compilerVersion)
    {
        ArgumentNullException.ThrowIfNull(request);
        return Convert.ToHexStringLower(CacheKey.Compute(request, compilerVersion));
    }

    /// <summary>The cubin for <paramref name="request"/>: from memory, else from a verified disk entry, else compiled (and stored).</summary>
    /// <exception cref="NvrtcCompilationException">The source did not compile; nothing is cached, so a later call retries.</exception>
    public ModuleImage GetOrCompile(NvrtcRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var key = CacheKey.Compute(request, Compiler.Version);
        var image = _memory.GetOrCreate(Convert.ToHexStringLower(key), hex => Produce(request, key, hex), out var created);
        if (!created)
        {
            Interlocked.Increment(ref _memoryHits);
        }
        return image;
    }

    /// <summary>The file an entry with this key lives in, or null for a memory-only cache.</summary>
    internal string? EntryPath(string key) => Directory is null ? null : Path.Combine(Directory, key + CacheEntryFile.Extension);

    internal static string? DefaultDirectory(Func<string, string?> environment, string? home)
    {
        if (environment(DirectoryVariable) is { Length: > 0 } explicitDirectory)
        {
            return explicitDirectory;
        }
        // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
        if (environment("XDG_CACHE_HOME") is { Length: > 0 } xdg && Path.IsPathRooted(xdg))
        {
            return Path.Combine(xdg, "kerneldsl");
        }
        return string.IsNullOrEmpty(home) ? null : Path.Combine(home, ".cache", "kerneldsl");
    }

    private ModuleImage Produce(NvrtcRequest request, byte[] key, string hex)
    {
        var path = EntryPath(hex);
        if (path is not null && TryLoad(path, key) is { } stored)
        {
            return new ModuleImage(hex, request.Arch, stored);
        }
        var clock = Stopwatch.StartNew();
        var result = Compiler.Compile(request);
        Interlocked.Exchange(ref _lastColdCompileTicks, clock.Elapsed.Ticks);
        Interlocked.Increment(ref _compilations);
        if (path is not null)
        {
            Store(path, key, result.Cubin);
        }
        return new ModuleImage(hex, request.Arch, result.Cubin);
    }

    private byte[]? TryLoad(string path, byte[] key)
    {
        var clock = Stopwatch.StartNew();
        if (AtomicFile.TryRead(path, out var unreadable) is not { } file)
        {
            if (unreadable is not null)
            {
                Warn($"Could not read module cache entry '{path}' ({unreadable}); compiling instead.");
            }
            return null;
        }
        var payload = CacheEntryFile.Decode(file, key, out var problem);
        if (payload is null)
        {
            Interlocked.Increment(ref _rejectedEntries);
            Warn($"Ignoring module cache entry '{path}': {problem}. Deleting it and compiling again.");
            AtomicFile.TryDelete(path);  // an entry that stays behind is verified (and rejected) again on the next read
            return null;
        }
        Interlocked.Exchange(ref _lastWarmLoadTicks, clock.Elapsed.Ticks);
        Interlocked.Increment(ref _diskHits);
        return payload;
    }

    // AtomicFile: readers see no entry or a complete one; racing writers replace one valid entry with an identical one.
    private void Store(string path, byte[] key, byte[] cubin)
    {
        if (AtomicFile.TryWrite(path, CacheEntryFile.Encode(key, cubin)) is { } error)
        {
            Warn($"Could not write module cache entry '{path}' ({error}); keeping the cubin in memory only.");
        }
    }

    private void Warn(string message) => Warnings.Raise(this, Warning, ref _warnings, message);

    private static TimeSpan? Duration(ref long ticks)
    {
        var value = Interlocked.Read(ref ticks);
        return value < 0 ? null : TimeSpan.FromTicks(value);
    }
}
