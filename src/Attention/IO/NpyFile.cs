using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace KernelDsl.Attention.IO;

/// <summary>An array read from or written to NumPy's .npy format: C order, little-endian.</summary>
public sealed record NpyArray<T>(int[] Shape, T[] Data) where T : unmanaged;

/// <summary>
/// NumPy's .npy format (versions 1.0 to 3.0): a magic string, a header dictionary with the dtype, order and shape,
/// then the raw data. Only what attention needs: little-endian f16 ('&lt;f2'), f32 ('&lt;f4') and int32 ('&lt;i4', e.g.
/// a modifier's document ids), C order.
/// </summary>
public static partial class NpyFile
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    public static NpyArray<Half> ReadHalf(string path) => Read<Half>(path, "<f2");

    public static NpyArray<float> ReadSingle(string path) => Read<float>(path, "<f4");

    public static NpyArray<int> ReadInt32(string path) => Read<int>(path, "<i4");

    public static void Write(string path, ReadOnlySpan<Half> data, params int[] shape) => Write(path, data, "<f2", shape);

    public static void Write(string path, ReadOnlySpan<float> data, params int[] shape) => Write(path, data, "<f4", shape);

    public static void Write(string path, ReadOnlySpan<int> data, params int[] shape) => Write(path, data, "<i4", shape);

    /// <exception cref="InvalidDataException">
    /// The file is not a .npy file, is truncated or too long, or holds another dtype, byte order or order; the message
    /// names the file, what it holds, and the fix.
    /// </exception>
    private static NpyArray<T> Read<T>(string path, string descr) where T : unmanaged
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic))
        {
            throw new InvalidDataException($"'{path}' is not a .npy file (it does not start with the \\x93NUMPY magic): save the array with numpy.save.");
        }
        var major = bytes[6];
        var (headerLength, headerStart) = major switch
        {
            1 => (BitConverter.ToUInt16(bytes, 8), 10),
            2 or 3 when bytes.Length >= 12 => ((int)BitConverter.ToUInt32(bytes, 8), 12),
            2 or 3 => (0, 12),
            _ => throw new InvalidDataException($"'{path}' has .npy version {major}.{bytes[7]}; versions 1 to 3 are read: save it with numpy.save."),
        };
        if (headerLength <= 0 || (long)headerStart + headerLength > bytes.Length)
        {
            throw new InvalidDataException($"'{path}' is truncated: its header is cut off ({bytes.Length} bytes in all). Save the array again with numpy.save.");
        }
        var header = Encoding.Latin1.GetString(bytes, headerStart, headerLength);
        var dtype = DescrPattern().Match(header);
        if (!dtype.Success || dtype.Groups[1].Value != descr)
        {
            var held = dtype.Success ? $"{Describe(dtype.Groups[1].Value)} ('{dtype.Groups[1].Value}')" : "no dtype NumPy writes";
            throw new InvalidDataException($"'{path}' holds {held}; {Describe(descr)} ('{descr}') is needed: convert it with numpy, a.astype('{descr}').");
        }
        if (FortranPattern().Match(header) is { Success: true } fortran && fortran.Groups[1].Value == "True")
        {
            throw new InvalidDataException($"'{path}' is in Fortran order; C order is needed: write it with numpy.ascontiguousarray(a) first.");
        }
        var shapeMatch = ShapePattern().Match(header);
        var dims = shapeMatch.Success ? shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [];
        var shape = new int[dims.Length];
        if (!shapeMatch.Success || dims.Where((x, i) => !int.TryParse(x, NumberStyles.None, CultureInfo.InvariantCulture, out shape[i])).Any())
        {
            throw new InvalidDataException($"'{path}' has no readable shape in its header ({header.Trim()}): save the array with numpy.save.");
        }
        var count = shape.Aggregate(1L, (a, x) => a * x);
        var dataStart = headerStart + headerLength;
        var size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        var (expected, actual) = (count * size, (long)bytes.Length - dataStart);
        if (actual != expected)
        {
            var shapeText = $"({string.Join(", ", shape)})";
            throw new InvalidDataException(actual < expected
                ? $"'{path}' is truncated: shape {shapeText} of {Describe(descr)} needs {expected} bytes after the header, and {actual} follow. Save the array again with numpy.save."
                : $"'{path}' has {actual - expected} bytes more than shape {shapeText} of {Describe(descr)} needs ({expected}): it is not one array saved with numpy.save.");
        }
        var data = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(bytes.AsSpan(dataStart)).ToArray();
        return new NpyArray<T>(shape, data);
    }

    /// <summary>A dtype in words: '&lt;f2' is "float16", '&gt;f2' "big-endian float16", '&lt;i8' "int64".</summary>
    internal static string Describe(string descr)
    {
        if (descr.Length < 3 || descr[0] is not ('<' or '>' or '|' or '='))
        {
            return $"dtype {descr}";
        }
        var kind = descr[1] switch { 'f' => "float", 'i' => "int", 'u' => "uint", 'b' => "bool", 'c' => "complex", _ => null };
        if (kind is null || !int.TryParse(descr.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out var bytes))
        {
            return $"dtype {descr}";
        }
        var name = kind == "bool" ? "bool" : $"{kind}{bytes * 8}";
        return descr[0] == '>' && bytes > 1 ? "big-endian " + name : name;
    }

    private static void Write<T>(string path, ReadOnlySpan<T> data, string descr, int[] shape) where T : unmanaged
    {
        if (shape.Aggregate(1L, (a, x) => a * x) != data.Length)
        {
            throw new ArgumentException($"shape ({string.Join(", ", shape)}) holds a different number of elements than data ({data.Length}).", nameof(shape));
        }
        var shapeText = shape.Length == 1 ? $"({shape[0]},)" : "(" + string.Join(", ", shape) + ")";
        var header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shapeText}, }}";
        // Version 1.0: the header is padded with spaces and ends in '\n' so the data starts 64-byte aligned.
        var unpadded = 10 + header.Length + 1;
        header += new string(' ', (64 - unpadded % 64) % 64) + "\n";
        using var file = File.Create(path);
        file.Write(Magic);
        file.Write([1, 0]);
        file.Write(BitConverter.GetBytes((ushort)header.Length));
        file.Write(Encoding.Latin1.GetBytes(header));
        file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
