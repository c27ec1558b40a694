using System.Collections.Generic;
using System.Linq;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// A thread's <paramref name="Channels"/> adjacent channels of a row (2 or 4) as one vector access: floats as a float2 or
/// float4, 16-bit values as a u32 or a uint2 of pairs packed by <paramref name="PackPair"/>. The paged decode kernel's Q
/// loads, its block merge and the split merge all read and write a lane's channels this way.
/// </summary>
internal sealed record ChannelVector(int Channels, string PackPair)
{
    private static readonly string[] AllFields = ["x", "y", "z", "w"];

    /// <summary>The float vector type.</summary>
    public string Float => Channels switch
    {
        2 => "float2",
        4 => "float4",
        _ => throw new System.InvalidOperationException($"{Channels} channels a thread have no vector access; 2 and 4 do."),
    };

    /// <summary>The float vector's fields, in channel order.</summary>
    public IReadOnlyList<string> Fields => AllFields.Take(Channels).ToArray();

    /// <summary>The 16-bit values' vector type: one pair in a u32, two in a uint2.</summary>
    public string Halves => Channels == 2 ? "u32" : "uint2";

    /// <summary>Pair <paramref name="pair"/> (channels 2·pair and 2·pair + 1) of the 16-bit vector <paramref name="vector"/>, as a u32.</summary>
    public string Pair(string vector, int pair) => Channels == 2 ? vector : $"{vector}.{AllFields[pair]}";

    /// <summary>A float vector of <paramref name="values"/>, one a channel.</summary>
    public string MakeFloat(IEnumerable<string> values) => $"make_{Float}({string.Join(", ", values)})";

    /// <summary>The 16-bit vector of <paramref name="values"/>, one float a channel, rounded in pairs.</summary>
    public string PackHalves(IReadOnlyList<string> values)
    {
        var pairs = Enumerable.Range(0, Channels / 2).Select(i => $"{PackPair}({values[2 * i]}, {values[2 * i + 1]})").ToArray();
        return Channels == 2 ? pairs[0] : $"make_uint2({string.Join(", ", pairs)})";
    }
}
