using System.Text;
using KernelDsl.Attention.IO;

namespace AttentionTests.IO;

/// <summary>The .npy reader and writer, against the format's specification (NumPy's NEP 1 / numpy.lib.format).</summary>
public class NpyFileTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("npy-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string PathOf(string name) => Path.Combine(_folder, name);

    [Fact]
    public void F16_round_trips_with_its_shape()
    {
        var random = new Random(Environment.TickCount);
        var data = Enumerable.Range(0, 2 * 3 * 5 * 8).Select(_ => (Half)(random.NextDouble() * 8 - 4)).ToArray();
        NpyFile.Write(PathOf("x.npy"), data, 2, 3, 5, 8);
        var read = NpyFile.ReadHalf(PathOf("x.npy"));
        Assert.Equal([2, 3, 5, 8], read.Shape);
        Assert.Equal(data, read.Data);
    }

    [Fact]
    public void The_header_is_what_the_format_specifies()
    {
        NpyFile.Write(PathOf("x.npy"), new float[] { 1f, 2f, 3f }, 3);
        var bytes = File.ReadAllBytes(PathOf("x.npy"));
        Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }, bytes[..8]);
        var length = BitConverter.ToUInt16(bytes, 8);
        var header = Encoding.Latin1.GetString(bytes, 10, length);
        Assert.StartsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", header);
        Assert.EndsWith("\n", header);
        Assert.Equal(0, (10 + length) % 64); // the data starts 64-byte aligned
        Assert.Equal(10 + length + 12, bytes.Length);
        Assert.Equal(2f, BitConverter.ToSingle(bytes, 10 + length + 4));
    }

    [Fact]
    public void A_version_2_header_written_by_hand_is_read()
    {
        var header = "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }";
        header += new string(' ', (64 - (12 + header.Length + 1) % 64) % 64) + "\n";
        var values = new[] { (Half)1.5, (Half)(-2), (Half)0.25, (Half)1024 };
        var bytes = new List<byte> { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 2, 0 };
        bytes.AddRange(BitConverter.GetBytes((uint)header.Length));
        bytes.AddRange(Encoding.Latin1.GetBytes(header));
        foreach (var v in values)
        {
            bytes.AddRange(BitConverter.GetBytes(v));
        }
        File.WriteAllBytes(PathOf("v2.npy"), bytes.ToArray());
        var read = NpyFile.ReadHalf(PathOf("v2.npy"));
        Assert.Equal([2, 2], read.Shape);
        Assert.Equal(values, read.Data);
    }

    [Fact]
    public void Bad_files_are_refused_with_what_they_hold_and_the_fix()
    {
        File.WriteAllBytes(PathOf("junk.npy"), Encoding.ASCII.GetBytes("not a numpy file at all"));
        Assert.Contains("not a .npy file", Assert.Throws<InvalidDataException>(() => NpyFile.ReadHalf(PathOf("junk.npy"))).Message);

        NpyFile.Write(PathOf("f32.npy"), new float[] { 1f }, 1);
        var f32 = Assert.Throws<InvalidDataException>(() => NpyFile.ReadHalf(PathOf("f32.npy"))).Message;
        Assert.Contains("holds float32 ('<f4'); float16 ('<f2') is needed", f32);
        Assert.Contains("a.astype('<f2')", f32);

        var fortran = File.ReadAllBytes(PathOf("f32.npy"));
        var text = Encoding.Latin1.GetString(fortran).Replace("'fortran_order': False", "'fortran_order': True ");
        File.WriteAllBytes(PathOf("fortran.npy"), Encoding.Latin1.GetBytes(text));
        Assert.Contains("Fortran order", Assert.Throws<InvalidDataException>(() => NpyFile.ReadSingle(PathOf("fortran.npy"))).Message);

        File.WriteAllBytes(PathOf("short.npy"), fortran[..^2]);
        Assert.Contains("is truncated: shape (1) of float32 needs 4 bytes after the header, and 2 follow",
            Assert.Throws<InvalidDataException>(() => NpyFile.ReadSingle(PathOf("short.npy"))).Message);
        File.WriteAllBytes(PathOf("long.npy"), [.. fortran, 0, 0]);
        Assert.Contains("2 bytes more than", Assert.Throws<InvalidDataException>(() => NpyFile.ReadSingle(PathOf("long.npy"))).Message);
        File.WriteAllBytes(PathOf("header.npy"), fortran[..40]);
        Assert.Contains("header is cut off", Assert.Throws<InvalidDataException>(() => NpyFile.ReadSingle(PathOf("header.npy"))).Message);

        Assert.Equal("shape", Assert.Throws<ArgumentException>(() => NpyFile.Write(PathOf("bad.npy"), new float[] { 1f, 2f }, 3)).ParamName);
    }

    [Fact]
    public void A_big_endian_f16_file_is_refused_naming_its_byte_order()
    {
        NpyFile.Write(PathOf("le.npy"), new[] { (Half)1, (Half)2 }, 2);
        var text = Encoding.Latin1.GetString(File.ReadAllBytes(PathOf("le.npy"))).Replace("'<f2'", "'>f2'");
        File.WriteAllBytes(PathOf("be.npy"), Encoding.Latin1.GetBytes(text));
        Assert.Contains("holds big-endian float16 ('>f2'); float16 ('<f2') is needed", Assert.Throws<InvalidDataException>(() => NpyFile.ReadHalf(PathOf("be.npy"))).Message);
    }

    [Theory]
    [InlineData("<f2", "float16")]
    [InlineData(">f2", "big-endian float16")]
    [InlineData("<f4", "float32")]
    [InlineData("<i8", "int64")]
    [InlineData("|u1", "uint8")]
    [InlineData("|b1", "bool")]
    [InlineData("<U10", "dtype <U10")]
    public void Dtypes_are_named_as_numpy_names_them(string descr, string words) => Assert.Equal(words, NpyFile.Describe(descr));
}
