namespace KernelDsl;

/// <summary>
/// Whole-file writes that readers never see half done: the bytes go to a unique temporary file in the same folder,
/// are flushed, then renamed over the target. Rename is atomic within a file system, so a reader in this or another
/// process sees the old file, no file, or the complete new one, and racing writers just replace one complete file
/// with another. Used by the module cache and the autotuner.
/// </summary>
internal static class AtomicFile
{
    /// <summary>Writes <paramref name="contents"/> to <paramref name="path"/>; on an I/O or permission error returns its message and leaves no temporary file.</summary>
    public static string? TryWrite(string path, ReadOnlySpan<byte> contents)
    {
        var folder = Path.GetDirectoryName(path)!;
        var temporary = Path.Combine(folder, $"{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(folder);
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(contents);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temporary);
            return e.Message;
        }
    }

    /// <summary>
    /// The whole of <paramref name="path"/>, or null: with <paramref name="problem"/> null where there is no such file (the
    /// usual miss), else the I/O or permission error's message, which the caller reports before doing the work again.
    /// </summary>
    public static byte[]? TryRead(string path, out string? problem)
    {
        problem = null;
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problem = e.Message;
            return null;
        }
    }

    /// <summary>Deletes a file if it can; a file that stays behind is the caller's to tolerate.</summary>
    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort by contract.
        }
    }
}
