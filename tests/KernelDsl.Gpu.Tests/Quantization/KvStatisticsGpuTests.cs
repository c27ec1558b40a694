using System.Runtime.InteropServices;
using KernelDsl;
using KernelDsl.Attention.Quantization;
using KernelDsl.Attention.Reference;
using KernelDsl.Launching;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Quantization;

/// <summary>
/// K and V quantized as Int8Attention does it (docs/PERF_NOTES.md §10): the KvStatistics pass (K's channel mean and V's
/// channel scales from one read of both), then the codes, either with the Quantize variants' LaunchCodes or with the
/// KvCodes pass (K's and V's codes in one launch). Everything is
/// compared with the CPU reference element for element — K and V codes byte for byte, K's scales, K's mean and V's scales
/// bit for bit — on fresh random and structured (large per-channel offsets) inputs, BHSD and BSHD (K and V in different
/// layouts), token counts that are not multiples of the slices, the K tiles or the padding; outputs are poisoned first.
/// </summary>
public class KvStatisticsGpuTests
{
    private const byte Poison = 0x5A;

    /// <summary>How V's codes are laid out and typed.</summary>
    private enum VForm { Natural, NaturalE4m3, Pi, PiE4m3 }

    /// <summary>The device buffers of one run, allocated for the case's shape.</summary>
    /// <param name="V8">V's e4m3 codes; <paramref name="V8Int"/> its int8 codes (each case writes one of them).</param>
    private sealed record Outputs(DeviceBuffer<float> KMean, DeviceBuffer<float> VScale, DeviceBuffer<float> Workspace, DeviceBuffer<sbyte> K8,
        DeviceBuffer<float> KScale, DeviceBuffer<byte> V8, DeviceBuffer<sbyte> V8Int, DeviceBuffer<uint> KNonFinite, DeviceBuffer<uint> VNonFinite,
        DeviceBuffer<uint> Sync)
    {
        public IDisposable[] All => [KMean, VScale, Workspace, K8, KScale, V8, V8Int, KNonFinite, VNonFinite, Sync];

        /// <summary>Poisons every output and zeroes the counters.</summary>
        public void Reset()
        {
            foreach (var buffer in new[] { KMean, VScale, Workspace, KScale })
            {
                buffer.FillBytes(Poison);
            }
            K8.FillBytes(Poison);
            V8.FillBytes(Poison);
            V8Int.FillBytes(Poison);
            KNonFinite.FillBytes(0);
            VNonFinite.FillBytes(0);
            Sync.FillBytes(Poison);  // the single pass's launcher must zero its ticket, counts and flags itself
        }

        /// <summary>The V codes the case wrote, as bytes.</summary>
        public byte[] VCodes(VForm form) => form is VForm.PiE4m3 or VForm.NaturalE4m3 ? V8.ToArray() : MemoryMarshal.AsBytes(V8Int.ToArray().AsSpan()).ToArray();
    }

    /// <summary>The tensors' strides: K and V may differ (one BHSD, one BSHD).</summary>
    private sealed record Strides(long KB, long KH, long KS, long VB, long VH, long VS);

    /// <summary>One statistics variant with one V form, as the test drives it.</summary>
    private sealed record Case(string Name, Element Input, int HeadDim, int MeanLanes, int SliceTokens, VForm V, QuantizeOptions VOptions,
        KernelModuleDefinition VModule, Func<int, int, int, long> WorkspaceLength, Func<int, int, int, long> KScaleCount, Func<int, int, int, long> VLength,
        Action<CudaStream, ushort[], ushort[], Strides, int, int, int, Outputs> Run);

    /// <summary>Uploads K and V as the element type the launchers take, runs, and waits before freeing them.</summary>
    private static void WithInputs<T>(CudaStream stream, ushort[] k, ushort[] v, Action<DeviceBuffer<T>, DeviceBuffer<T>> run) where T : unmanaged
    {
        using var dk = stream.Device.Upload<T>(MemoryMarshal.Cast<ushort, T>(k));
        using var dv = stream.Device.Upload<T>(MemoryMarshal.Cast<ushort, T>(v));
        run(dk, dv);
        stream.Synchronize();
    }

    private static QuantizeOptions Channel(int headDim, VForm form, int pad = 64, ReadOnlySpan<byte> order = default) => new()
    {
        HeadDim = headDim, Granularity = QuantGranularity.PerChannel, BlockRows = 128, Output = form is VForm.PiE4m3 or VForm.NaturalE4m3 ? Element.E4M3 : Element.S8,
        Transposed = form is VForm.Pi or VForm.PiE4m3, TransposePad = pad, StoredTokenOrder = form is VForm.Pi or VForm.PiE4m3 ? order.ToArray().Select(x => (int)x).ToArray() : null,
    };

    private static readonly Case[] Cases =
    [
        new("D128 natural", Element.F16, 128, KvStatisticsD128.MeanLanes, KvStatisticsD128.SliceTokens, VForm.Natural, Channel(128, VForm.Natural), QuantizeVChannelD128.Module,
            KvStatisticsD128.WorkspaceLength, QuantizeKSmoothBlock64D128.ScaleCount, QuantizeVChannelD128.OutputLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD128.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                QuantizeKSmoothBlock64D128.LaunchCodes(s, dk, st.KB, st.KH, st.KS, b, h, t, o.K8, o.KScale, o.KMean);
                QuantizeVChannelD128.LaunchCodes(s, dv, st.VB, st.VH, st.VS, b, h, t, o.V8Int, o.VScale);
            })),
        new("D128 pi", Element.F16, 128, KvStatisticsD128.MeanLanes, KvStatisticsD128.SliceTokens, VForm.Pi,
            Channel(128, VForm.Pi, QuantizeVChannelPiD128.TransposePad, QuantizeVChannelPiD128.StoredTokenOrder), QuantizeVChannelPiD128.Module,
            KvStatisticsD128.WorkspaceLength, QuantizeKSmoothBlock64D128.ScaleCount, QuantizeVChannelPiD128.OutputLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD128.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                QuantizeKSmoothBlock64D128.LaunchCodes(s, dk, st.KB, st.KH, st.KS, b, h, t, o.K8, o.KScale, o.KMean);
                QuantizeVChannelPiD128.LaunchCodes(s, dv, st.VB, st.VH, st.VS, b, h, t, o.V8Int, o.VScale);
            })),
        new("D128 pi e4m3", Element.F16, 128, KvStatisticsD128E4m3.MeanLanes, KvStatisticsD128E4m3.SliceTokens, VForm.PiE4m3,
            Channel(128, VForm.PiE4m3, QuantizeVChannelPiD128E4m3.TransposePad, QuantizeVChannelPiD128E4m3.StoredTokenOrder), QuantizeVChannelPiD128E4m3.Module,
            KvStatisticsD128E4m3.WorkspaceLength, QuantizeKSmoothBlock64D128.ScaleCount, QuantizeVChannelPiD128E4m3.OutputLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD128E4m3.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                QuantizeKSmoothBlock64D128.LaunchCodes(s, dk, st.KB, st.KH, st.KS, b, h, t, o.K8, o.KScale, o.KMean);
                QuantizeVChannelPiD128E4m3.LaunchCodes(s, dv, st.VB, st.VH, st.VS, b, h, t, o.V8, o.VScale);
            })),
        new("D64 pi", Element.F16, 64, KvStatisticsD64.MeanLanes, KvStatisticsD64.SliceTokens, VForm.Pi,
            Channel(64, VForm.Pi, QuantizeVChannelPiD64.TransposePad, QuantizeVChannelPiD64.StoredTokenOrder), QuantizeVChannelPiD64.Module,
            KvStatisticsD64.WorkspaceLength, QuantizeKSmoothBlock64D64.ScaleCount, QuantizeVChannelPiD64.OutputLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD64.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                QuantizeKSmoothBlock64D64.LaunchCodes(s, dk, st.KB, st.KH, st.KS, b, h, t, o.K8, o.KScale, o.KMean);
                QuantizeVChannelPiD64.LaunchCodes(s, dv, st.VB, st.VH, st.VS, b, h, t, o.V8Int, o.VScale);
            })),
        new("D64 pi e4m3 bf16", Element.BF16, 64, KvStatisticsD64E4m3Bf16.MeanLanes, KvStatisticsD64E4m3Bf16.SliceTokens, VForm.PiE4m3,
            Channel(64, VForm.PiE4m3, QuantizeVChannelPiD64E4m3Bf16.TransposePad, QuantizeVChannelPiD64E4m3Bf16.StoredTokenOrder), QuantizeVChannelPiD64E4m3Bf16.Module,
            KvStatisticsD64E4m3Bf16.WorkspaceLength, QuantizeKSmoothBlock64D64Bf16.ScaleCount, QuantizeVChannelPiD64E4m3Bf16.OutputLength,
            (s, k, v, st, b, h, t, o) => WithInputs<ushort>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD64E4m3Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                QuantizeKSmoothBlock64D64Bf16.LaunchCodes(s, dk, st.KB, st.KH, st.KS, b, h, t, o.K8, o.KScale, o.KMean);
                QuantizeVChannelPiD64E4m3Bf16.LaunchCodes(s, dv, st.VB, st.VH, st.VS, b, h, t, o.V8, o.VScale);
            })),
        new("D128 natural bf16", Element.BF16, 128, KvStatisticsD128Bf16.MeanLanes, KvStatisticsD128Bf16.SliceTokens, VForm.Natural, Channel(128, VForm.Natural), QuantizeVChannelD128Bf16.Module,
            KvStatisticsD128Bf16.WorkspaceLength, QuantizeKSmoothBlock64D128Bf16.ScaleCount, QuantizeVChannelD128Bf16.OutputLength,
            (s, k, v, st, b, h, t, o) => WithInputs<ushort>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD128Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                QuantizeKSmoothBlock64D128Bf16.LaunchCodes(s, dk, st.KB, st.KH, st.KS, b, h, t, o.K8, o.KScale, o.KMean);
                QuantizeVChannelD128Bf16.LaunchCodes(s, dv, st.VB, st.VH, st.VS, b, h, t, o.V8Int, o.VScale);
            })),
        new("D96 natural", Element.F16, 96, KvStatisticsD96.MeanLanes, KvStatisticsD96.SliceTokens, VForm.Natural, Channel(96, VForm.Natural), QuantizeVChannelD96.Module,
            KvStatisticsD96.WorkspaceLength, QuantizeKSmoothBlock64D96.ScaleCount, QuantizeVChannelD96.OutputLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD96.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                QuantizeKSmoothBlock64D96.LaunchCodes(s, dk, st.KB, st.KH, st.KS, b, h, t, o.K8, o.KScale, o.KMean);
                QuantizeVChannelD96.LaunchCodes(s, dv, st.VB, st.VH, st.VS, b, h, t, o.V8Int, o.VScale);
            })),
        new("D256 natural bf16", Element.BF16, 256, KvStatisticsD256Bf16.MeanLanes, KvStatisticsD256Bf16.SliceTokens, VForm.Natural, Channel(256, VForm.Natural), QuantizeVChannelD256Bf16.Module,
            KvStatisticsD256Bf16.WorkspaceLength, QuantizeKSmoothBlock64D256Bf16.ScaleCount, QuantizeVChannelD256Bf16.OutputLength,
            (s, k, v, st, b, h, t, o) => WithInputs<ushort>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD256Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                QuantizeKSmoothBlock64D256Bf16.LaunchCodes(s, dk, st.KB, st.KH, st.KS, b, h, t, o.K8, o.KScale, o.KMean);
                QuantizeVChannelD256Bf16.LaunchCodes(s, dv, st.VB, st.VH, st.VS, b, h, t, o.V8Int, o.VScale);
            })),
        // The codes pass (KvCodes): K's and V's codes in one launch, after the same statistics pass.
        new("codes D128 natural", Element.F16, 128, KvStatisticsD128.MeanLanes, KvStatisticsD128.SliceTokens, VForm.Natural, Channel(128, VForm.Natural), KvCodesD128.Module,
            KvStatisticsD128.WorkspaceLength, KvCodesD128.KScaleCount, KvCodesD128.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD128.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                KvCodesD128.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int);
            })),
        new("codes D128 pi", Element.F16, 128, KvStatisticsD128.MeanLanes, KvStatisticsD128.SliceTokens, VForm.Pi, Channel(128, VForm.Pi, KvCodesPiD128.TransposePad, KvCodesPiD128.StoredTokenOrder), KvCodesPiD128.Module,
            KvStatisticsD128.WorkspaceLength, KvCodesPiD128.KScaleCount, KvCodesPiD128.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD128.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                KvCodesPiD128.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int);
            })),
        new("codes D128 pi e4m3", Element.F16, 128, KvStatisticsD128E4m3.MeanLanes, KvStatisticsD128E4m3.SliceTokens, VForm.PiE4m3, Channel(128, VForm.PiE4m3, KvCodesPiD128E4m3.TransposePad, KvCodesPiD128E4m3.StoredTokenOrder), KvCodesPiD128E4m3.Module,
            KvStatisticsD128E4m3.WorkspaceLength, KvCodesPiD128E4m3.KScaleCount, KvCodesPiD128E4m3.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD128E4m3.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                KvCodesPiD128E4m3.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8);
            })),
        new("codes D128 natural e4m3", Element.F16, 128, KvStatisticsD128E4m3.MeanLanes, KvStatisticsD128E4m3.SliceTokens, VForm.NaturalE4m3, Channel(128, VForm.NaturalE4m3), KvCodesD128E4m3.Module,
            KvStatisticsD128E4m3.WorkspaceLength, KvCodesD128E4m3.KScaleCount, KvCodesD128E4m3.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD128E4m3.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                KvCodesD128E4m3.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8);
            })),
        new("codes D64 natural", Element.F16, 64, KvStatisticsD64.MeanLanes, KvStatisticsD64.SliceTokens, VForm.Natural, Channel(64, VForm.Natural), KvCodesD64.Module,
            KvStatisticsD64.WorkspaceLength, KvCodesD64.KScaleCount, KvCodesD64.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD64.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                KvCodesD64.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int);
            })),
        new("codes D64 pi", Element.F16, 64, KvStatisticsD64.MeanLanes, KvStatisticsD64.SliceTokens, VForm.Pi, Channel(64, VForm.Pi, KvCodesPiD64.TransposePad, KvCodesPiD64.StoredTokenOrder), KvCodesPiD64.Module,
            KvStatisticsD64.WorkspaceLength, KvCodesPiD64.KScaleCount, KvCodesPiD64.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD64.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                KvCodesPiD64.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int);
            })),
        new("codes D64 pi e4m3", Element.F16, 64, KvStatisticsD64E4m3.MeanLanes, KvStatisticsD64E4m3.SliceTokens, VForm.PiE4m3, Channel(64, VForm.PiE4m3, KvCodesPiD64E4m3.TransposePad, KvCodesPiD64E4m3.StoredTokenOrder), KvCodesPiD64E4m3.Module,
            KvStatisticsD64E4m3.WorkspaceLength, KvCodesPiD64E4m3.KScaleCount, KvCodesPiD64E4m3.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD64E4m3.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                KvCodesPiD64E4m3.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8);
            })),
        new("codes D128 natural bf16", Element.BF16, 128, KvStatisticsD128Bf16.MeanLanes, KvStatisticsD128Bf16.SliceTokens, VForm.Natural, Channel(128, VForm.Natural), KvCodesD128Bf16.Module,
            KvStatisticsD128Bf16.WorkspaceLength, KvCodesD128Bf16.KScaleCount, KvCodesD128Bf16.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<ushort>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD128Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                KvCodesD128Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int);
            })),
        new("codes D128 pi e4m3 bf16", Element.BF16, 128, KvStatisticsD128E4m3Bf16.MeanLanes, KvStatisticsD128E4m3Bf16.SliceTokens, VForm.PiE4m3, Channel(128, VForm.PiE4m3, KvCodesPiD128E4m3Bf16.TransposePad, KvCodesPiD128E4m3Bf16.StoredTokenOrder), KvCodesPiD128E4m3Bf16.Module,
            KvStatisticsD128E4m3Bf16.WorkspaceLength, KvCodesPiD128E4m3Bf16.KScaleCount, KvCodesPiD128E4m3Bf16.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<ushort>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD128E4m3Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                KvCodesPiD128E4m3Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8);
            })),
        new("codes D64 natural bf16", Element.BF16, 64, KvStatisticsD64Bf16.MeanLanes, KvStatisticsD64Bf16.SliceTokens, VForm.Natural, Channel(64, VForm.Natural), KvCodesD64Bf16.Module,
            KvStatisticsD64Bf16.WorkspaceLength, KvCodesD64Bf16.KScaleCount, KvCodesD64Bf16.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<ushort>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD64Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                KvCodesD64Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int);
            })),
        new("codes D64 pi e4m3 bf16", Element.BF16, 64, KvStatisticsD64E4m3Bf16.MeanLanes, KvStatisticsD64E4m3Bf16.SliceTokens, VForm.PiE4m3, Channel(64, VForm.PiE4m3, KvCodesPiD64E4m3Bf16.TransposePad, KvCodesPiD64E4m3Bf16.StoredTokenOrder), KvCodesPiD64E4m3Bf16.Module,
            KvStatisticsD64E4m3Bf16.WorkspaceLength, KvCodesPiD64E4m3Bf16.KScaleCount, KvCodesPiD64E4m3Bf16.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<ushort>(s, k, v, (dk, dv) =>
            {
                KvStatisticsD64E4m3Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.Workspace, o.KNonFinite, o.VNonFinite);
                KvCodesPiD64E4m3Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8);
            })),
        // The single pass (KvSinglePass): the same statistics and codes in one launch (its codes blocks read K and V again).
        new("single D128 natural", Element.F16, 128, KvSinglePassD128.MeanLanes, KvSinglePassD128.SliceTokens, VForm.Natural, Channel(128, VForm.Natural), KvSinglePassD128.Module,
            KvSinglePassD128.WorkspaceLength, KvSinglePassD128.KScaleCount, KvSinglePassD128.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
                KvSinglePassD128.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int, o.Workspace, o.Sync, o.KNonFinite, o.VNonFinite))),
        new("single D128 pi", Element.F16, 128, KvSinglePassPiD128.MeanLanes, KvSinglePassPiD128.SliceTokens, VForm.Pi, Channel(128, VForm.Pi, KvSinglePassPiD128.TransposePad, KvSinglePassPiD128.StoredTokenOrder), KvSinglePassPiD128.Module,
            KvSinglePassPiD128.WorkspaceLength, KvSinglePassPiD128.KScaleCount, KvSinglePassPiD128.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
                KvSinglePassPiD128.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int, o.Workspace, o.Sync, o.KNonFinite, o.VNonFinite))),
        new("single D128 pi e4m3", Element.F16, 128, KvSinglePassPiD128E4m3.MeanLanes, KvSinglePassPiD128E4m3.SliceTokens, VForm.PiE4m3, Channel(128, VForm.PiE4m3, KvSinglePassPiD128E4m3.TransposePad, KvSinglePassPiD128E4m3.StoredTokenOrder), KvSinglePassPiD128E4m3.Module,
            KvSinglePassPiD128E4m3.WorkspaceLength, KvSinglePassPiD128E4m3.KScaleCount, KvSinglePassPiD128E4m3.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
                KvSinglePassPiD128E4m3.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8, o.Workspace, o.Sync, o.KNonFinite, o.VNonFinite))),
        new("single D64 natural", Element.F16, 64, KvSinglePassD64.MeanLanes, KvSinglePassD64.SliceTokens, VForm.Natural, Channel(64, VForm.Natural), KvSinglePassD64.Module,
            KvSinglePassD64.WorkspaceLength, KvSinglePassD64.KScaleCount, KvSinglePassD64.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
                KvSinglePassD64.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int, o.Workspace, o.Sync, o.KNonFinite, o.VNonFinite))),
        new("single D64 pi", Element.F16, 64, KvSinglePassPiD64.MeanLanes, KvSinglePassPiD64.SliceTokens, VForm.Pi, Channel(64, VForm.Pi, KvSinglePassPiD64.TransposePad, KvSinglePassPiD64.StoredTokenOrder), KvSinglePassPiD64.Module,
            KvSinglePassPiD64.WorkspaceLength, KvSinglePassPiD64.KScaleCount, KvSinglePassPiD64.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
                KvSinglePassPiD64.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int, o.Workspace, o.Sync, o.KNonFinite, o.VNonFinite))),
        new("single D64 pi e4m3 bf16", Element.BF16, 64, KvSinglePassPiD64E4m3Bf16.MeanLanes, KvSinglePassPiD64E4m3Bf16.SliceTokens, VForm.PiE4m3, Channel(64, VForm.PiE4m3, KvSinglePassPiD64E4m3Bf16.TransposePad, KvSinglePassPiD64E4m3Bf16.StoredTokenOrder), KvSinglePassPiD64E4m3Bf16.Module,
            KvSinglePassPiD64E4m3Bf16.WorkspaceLength, KvSinglePassPiD64E4m3Bf16.KScaleCount, KvSinglePassPiD64E4m3Bf16.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<ushort>(s, k, v, (dk, dv) =>
                KvSinglePassPiD64E4m3Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8, o.Workspace, o.Sync, o.KNonFinite, o.VNonFinite))),
        new("single D128 natural bf16", Element.BF16, 128, KvSinglePassD128Bf16.MeanLanes, KvSinglePassD128Bf16.SliceTokens, VForm.Natural, Channel(128, VForm.Natural), KvSinglePassD128Bf16.Module,
            KvSinglePassD128Bf16.WorkspaceLength, KvSinglePassD128Bf16.KScaleCount, KvSinglePassD128Bf16.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<ushort>(s, k, v, (dk, dv) =>
                KvSinglePassD128Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int, o.Workspace, o.Sync, o.KNonFinite, o.VNonFinite))),
        new("single D64 pi e4m3", Element.F16, 64, KvSinglePassPiD64E4m3.MeanLanes, KvSinglePassPiD64E4m3.SliceTokens, VForm.PiE4m3, Channel(64, VForm.PiE4m3, KvSinglePassPiD64E4m3.TransposePad, KvSinglePassPiD64E4m3.StoredTokenOrder), KvSinglePassPiD64E4m3.Module,
            KvSinglePassPiD64E4m3.WorkspaceLength, KvSinglePassPiD64E4m3.KScaleCount, KvSinglePassPiD64E4m3.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<Half>(s, k, v, (dk, dv) =>
                KvSinglePassPiD64E4m3.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8, o.Workspace, o.Sync, o.KNonFinite, o.VNonFinite))),
        new("single D128 pi e4m3 bf16", Element.BF16, 128, KvSinglePassPiD128E4m3Bf16.MeanLanes, KvSinglePassPiD128E4m3Bf16.SliceTokens, VForm.PiE4m3, Channel(128, VForm.PiE4m3, KvSinglePassPiD128E4m3Bf16.TransposePad, KvSinglePassPiD128E4m3Bf16.StoredTokenOrder), KvSinglePassPiD128E4m3Bf16.Module,
            KvSinglePassPiD128E4m3Bf16.WorkspaceLength, KvSinglePassPiD128E4m3Bf16.KScaleCount, KvSinglePassPiD128E4m3Bf16.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<ushort>(s, k, v, (dk, dv) =>
                KvSinglePassPiD128E4m3Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8, o.Workspace, o.Sync, o.KNonFinite, o.VNonFinite))),
        new("single D64 natural bf16", Element.BF16, 64, KvSinglePassD64Bf16.MeanLanes, KvSinglePassD64Bf16.SliceTokens, VForm.Natural, Channel(64, VForm.Natural), KvSinglePassD64Bf16.Module,
            KvSinglePassD64Bf16.WorkspaceLength, KvSinglePassD64Bf16.KScaleCount, KvSinglePassD64Bf16.VCodesLength,
            (s, k, v, st, b, h, t, o) => WithInputs<ushort>(s, k, v, (dk, dv) =>
                KvSinglePassD64Bf16.Launch(s, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, b, h, t, o.KMean, o.VScale, o.K8, o.KScale, o.V8Int, o.Workspace, o.Sync, o.KNonFinite, o.VNonFinite))),
    ];

    public static TheoryData<string, int, int, int, bool, bool> ShapeCases()
    {
        var data = new TheoryData<string, int, int, int, bool, bool>();
        foreach (var c in Cases)
        {
            data.Add(c.Name, 1, 1, 1, false, false);
            data.Add(c.Name, 2, 3, 17, true, false);
            data.Add(c.Name, 1, 2, 300, false, true);     // two slices, the second ragged
            data.Add(c.Name, 2, 2, 1000, true, true);     // four slices; not a multiple of 64 (K tiles) nor of the π padding
            data.Add(c.Name, 1, 1, 2 * c.SliceTokens + 5, false, true);
            // 18 slices: two groups of K's mean (MeanSliceGroup), the second with two slices.
            data.Add(c.Name, 1, 2, (KvStatisticsD128.MeanSliceGroup + 1) * c.SliceTokens + 5, true, true);
        }
        return data;
    }

    private static CudaDevice OpenOrSkip(Case c)
    {
        var device = Gpu.OpenOrSkip();
        if (!c.VModule.RunsOn(device.ComputeCapability))
        {
            device.Dispose();
            Assert.Skip($"{c.VModule.Name} is built for {string.Join(", ", c.VModule.Targets)}; this device is sm_{device.ComputeCapability}.");
        }
        return device;
    }

    private static ushort Bits(Element input, float value) =>
        input == Element.F16 ? BitConverter.HalfToUInt16Bits((Half)value) : (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16);

    /// <summary>A [batch, heads, tokens, d] tensor at the given strides (elements nothing reads stay 0), random, with optional per-channel offsets.</summary>
    private static ushort[] Tensor(Random random, Element input, int batch, int heads, int tokens, int d, long sb, long sh, long ss, bool offsets)
    {
        var x = new ushort[(batch - 1) * sb + (heads - 1) * sh + (tokens - 1) * ss + d];
        for (var b = 0; b < batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var s = 0; s < tokens; s++)
                {
                    for (var c = 0; c < d; c++)
                    {
                        // Structured: large per-channel offsets, as K has — what smoothing exists for.
                        var value = (float)(random.NextDouble() * 2 - 1) * 3f + (offsets ? (c % 5 - 2) * 40f : 0f);
                        x[b * sb + h * sh + s * ss + c] = Bits(input, value);
                    }
                }
            }
        }
        return x;
    }

    private static Strides Layout(int heads, int tokens, int d, bool kBshd)
    {
        // K in one layout, V in the other: the statistics pass takes each tensor's strides.
        (long B, long H, long S) bhsd = ((long)heads * tokens * d, (long)tokens * d, d), bshd = ((long)heads * tokens * d, d, (long)heads * d);
        var (k, v) = kBshd ? (bshd, bhsd) : (bhsd, bshd);
        return new Strides(k.B, k.H, k.S, v.B, v.H, v.S);
    }

    private static Outputs Allocate(CudaDevice device, Case c, int batch, int heads, int tokens) => new(
        device.Allocate<float>((long)batch * heads * c.HeadDim), device.Allocate<float>((long)batch * heads * c.HeadDim),
        device.Allocate<float>(c.WorkspaceLength(batch, heads, tokens)), device.Allocate<sbyte>((long)batch * heads * tokens * c.HeadDim),
        device.Allocate<float>(c.KScaleCount(batch, heads, tokens)), device.Allocate<byte>(c.VLength(batch, heads, tokens)),
        device.Allocate<sbyte>(c.VLength(batch, heads, tokens)), device.Allocate<uint>(1), device.Allocate<uint>(1),
        device.Allocate<uint>(Math.Max(KvSinglePassD64.SyncLength(batch, heads, tokens), KvSinglePassD128.SyncLength(batch, heads, tokens))));  // the most any single pass asks

    private static void Free(Outputs o)
    {
        foreach (var buffer in o.All)
        {
            buffer.Dispose();
        }
    }

    private static (QuantizeResult K, QuantizeResult V) Reference(Case c, ushort[] k, ushort[] v, Strides st, int batch, int heads, int tokens)
    {
        var kOptions = new QuantizeOptions
        {
            HeadDim = c.HeadDim, Granularity = QuantGranularity.PerRowBlock, BlockRows = 64, SubtractChannelMean = true,
            MeanSlices = c.MeanLanes, MeanSliceTokens = c.SliceTokens, MeanSliceGroup = KvStatisticsD128.MeanSliceGroup,  // a constant of the family
        };
        return (QuantizeReference.Quantize(k, c.Input, st.KB, st.KH, st.KS, batch, heads, tokens, 1f, kOptions),
            QuantizeReference.Quantize(v, c.Input, st.VB, st.VH, st.VS, batch, heads, tokens, 1f, c.VOptions));
    }

    /// <summary>
    /// Bit for bit, except that any NaN equals any NaN: the GPU's float arithmetic returns its one canonical NaN
    /// (0x7FFFFFFF) where x86 passes the operand's NaN through (a NaN in K makes its channel's mean NaN on both sides).
    /// </summary>
    private static void AssertBits(float[] expected, float[] actual, string what, int seed)
    {
        static bool Same(float e, float a) => float.IsNaN(e) ? float.IsNaN(a) : BitConverter.SingleToInt32Bits(e) == BitConverter.SingleToInt32Bits(a);
        var bad = Enumerable.Range(0, expected.Length).FirstOrDefault(i => !Same(expected[i], actual[i]), -1);
        Assert.True(expected.Length == actual.Length && bad < 0, $"seed {seed}: {what}[{bad}] = {(bad < 0 ? 0 : actual[bad])}, reference {(bad < 0 ? 0 : expected[bad])}");
    }

    private static void AssertBytes(byte[] expected, byte[] actual, string what, int seed)
    {
        var bad = Enumerable.Range(0, expected.Length).FirstOrDefault(i => expected[i] != actual[i], -1);
        Assert.True(expected.Length == actual.Length && bad < 0, $"seed {seed}: {what}[{bad}] = {(bad < 0 ? 0 : actual[bad])}, reference {(bad < 0 ? 0 : expected[bad])}");
    }

    [Theory]
    [MemberData(nameof(ShapeCases))]
    public void Statistics_and_codes_match_the_cpu_reference_bit_for_bit(string name, int batch, int heads, int tokens, bool kBshd, bool offsets)
    {
        var c = Cases.Single(x => x.Name == name);
        using var device = OpenOrSkip(c);
        using var stream = device.CreateStream();
        var seed = Environment.TickCount ^ name.GetHashCode(StringComparison.Ordinal) ^ tokens;
        var random = new Random(seed);
        var st = Layout(heads, tokens, c.HeadDim, kBshd);
        var k = Tensor(random, c.Input, batch, heads, tokens, c.HeadDim, st.KB, st.KH, st.KS, offsets);
        var v = Tensor(random, c.Input, batch, heads, tokens, c.HeadDim, st.VB, st.VH, st.VS, offsets);
        var (expectedK, expectedV) = Reference(c, k, v, st, batch, heads, tokens);

        var o = Allocate(device, c, batch, heads, tokens);
        try
        {
            o.Reset();
            c.Run(stream, k, v, st, batch, heads, tokens, o);

            AssertBits(expectedK.ChannelMean!, o.KMean.ToArray(), "kMean", seed);
            AssertBits(expectedV.Scales, o.VScale.ToArray(), "vScale", seed);
            AssertBits(expectedK.Scales, o.KScale.ToArray(), "kScale", seed);
            AssertBytes(expectedK.Bytes(), MemoryMarshal.AsBytes(o.K8.ToArray().AsSpan()).ToArray(), "k8", seed);
            AssertBytes(expectedV.Bytes(), o.VCodes(c.V), "v8", seed);
            Assert.Equal(0u, o.KNonFinite.ToArray()[0]);
            Assert.Equal(0u, o.VNonFinite.ToArray()[0]);
        }
        finally
        {
            Free(o);
        }
    }

    public static TheoryData<string> CaseNames() => new(Cases.Select(c => c.Name));

    /// <summary>The cases a device of this compute capability runs (the e4m3 codes need sm_89 or later), for the sanitizer smoke test.</summary>
    public static IEnumerable<string> NamesRunningOn(int computeCapability) => Cases.Where(c => c.VModule.RunsOn(computeCapability)).Select(c => c.Name);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void The_statistics_pass_counts_the_NaN_and_Inf_of_K_and_V_apart_and_the_codes_follow_the_reference(string name)
    {
        var c = Cases.Single(x => x.Name == name);
        using var device = OpenOrSkip(c);
        using var stream = device.CreateStream();
        var seed = Environment.TickCount ^ name.GetHashCode(StringComparison.Ordinal);
        var random = new Random(seed);
        const int batch = 2, heads = 2, tokens = 333;
        var st = Layout(heads, tokens, c.HeadDim, kBshd: true);
        var k = Tensor(random, c.Input, batch, heads, tokens, c.HeadDim, st.KB, st.KH, st.KS, offsets: true);
        var v = Tensor(random, c.Input, batch, heads, tokens, c.HeadDim, st.VB, st.VH, st.VS, offsets: false);
        ushort[] bad = c.Input == Element.F16 ? [0x7E00, 0x7C00, 0xFC00] : [0x7FC0, 0x7F80, 0xFF80];
        // K: one NaN and one +Inf; V: one NaN, one +Inf and one −Inf — in different heads, so some channels stay finite.
        k[st.KB + 0 * st.KH + 5 * st.KS + 3] = bad[0];
        k[0 * st.KB + 1 * st.KH + 290 * st.KS + 7] = bad[1];
        v[st.VB + st.VH + 17 * st.VS + 1] = bad[0];
        v[0 * st.VB + 0 * st.VH + 300 * st.VS + 2] = bad[1];
        v[st.VB + 0 * st.VH + 100 * st.VS + 9] = bad[2];
        var (expectedK, expectedV) = Reference(c, k, v, st, batch, heads, tokens);

        var o = Allocate(device, c, batch, heads, tokens);
        try
        {
            o.Reset();
            c.Run(stream, k, v, st, batch, heads, tokens, o);
            Assert.Equal(2u, o.KNonFinite.ToArray()[0]);
            Assert.Equal(3u, o.VNonFinite.ToArray()[0]);
            // The statistics and codes the reference gives for them (NaN means, Inf scales, zeroed channels).
            AssertBits(expectedK.ChannelMean!, o.KMean.ToArray(), "kMean", seed);
            AssertBits(expectedV.Scales, o.VScale.ToArray(), "vScale", seed);
            AssertBytes(expectedK.Bytes(), MemoryMarshal.AsBytes(o.K8.ToArray().AsSpan()).ToArray(), "k8", seed);
            AssertBytes(expectedV.Bytes(), o.VCodes(c.V), "v8", seed);
            // The counters accumulate over launches.
            c.Run(stream, k, v, st, batch, heads, tokens, o);
            Assert.Equal(4u, o.KNonFinite.ToArray()[0]);
            Assert.Equal(6u, o.VNonFinite.ToArray()[0]);
        }
        finally
        {
            Free(o);
        }
    }

    [Fact]
    public void A_single_pass_over_many_more_blocks_than_the_device_holds_writes_what_the_two_passes_write()
    {
        // B = 4, H = 16, S = 4096 at D = 128 (issue 14's shape): 64 heads of 32 statistics and 64 codes blocks each, so most
        // codes blocks start long after their head's statistics and some must wait for them. The two passes (KvStatistics,
        // then KvCodes) are the reference here: same order, so the same bytes.
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        const int batch = 4, heads = 16, tokens = 4096, d = KvSinglePassPiD128.HeadDim;
        var seed = Environment.TickCount;
        var st = Layout(heads, tokens, d, kBshd: true);
        var random = new Random(seed);
        var k = Tensor(random, Element.F16, batch, heads, tokens, d, st.KB, st.KH, st.KS, offsets: true);
        var v = Tensor(random, Element.F16, batch, heads, tokens, d, st.VB, st.VH, st.VS, offsets: true);
        using var dk = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(k));
        using var dv = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(v));
        (float[] Mean, float[] VScale, sbyte[] K8, float[] KScale, sbyte[] V8) Run(bool once)
        {
            using var mean = device.Allocate<float>((long)batch * heads * d);
            using var scale = device.Allocate<float>((long)batch * heads * d);
            using var k8 = device.Allocate<sbyte>((long)batch * heads * tokens * d);
            using var kScale = device.Allocate<float>(KvSinglePassPiD128.KScaleCount(batch, heads, tokens));
            using var v8 = device.Allocate<sbyte>(KvSinglePassPiD128.VCodesLength(batch, heads, tokens));
            using var workspace = device.Allocate<float>(Math.Max(KvSinglePassPiD128.WorkspaceLength(batch, heads, tokens), KvStatisticsD128.WorkspaceLength(batch, heads, tokens)));
            using var sync = device.Allocate<uint>(KvSinglePassPiD128.SyncLength(batch, heads, tokens));
            foreach (var buffer in new[] { mean, scale, kScale, workspace })
            {
                buffer.FillBytes(Poison);
            }
            k8.FillBytes(Poison);
            v8.FillBytes(Poison);
            sync.FillBytes(Poison);
            if (once)
            {
                KvSinglePassPiD128.Launch(stream, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, batch, heads, tokens, mean, scale, k8, kScale, v8, workspace, sync);
            }
            else
            {
                KvStatisticsD128.Launch(stream, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, batch, heads, tokens, mean, scale, workspace);
                KvCodesPiD128.Launch(stream, dk, st.KB, st.KH, st.KS, dv, st.VB, st.VH, st.VS, batch, heads, tokens, mean, scale, k8, kScale, v8);
            }
            stream.Synchronize();
            return (mean.ToArray(), scale.ToArray(), k8.ToArray(), kScale.ToArray(), v8.ToArray());
        }
        var two = Run(once: false);
        var one = Run(once: true);
        AssertBits(two.Mean, one.Mean, "kMean", seed);
        AssertBits(two.VScale, one.VScale, "vScale", seed);
        AssertBits(two.KScale, one.KScale, "kScale", seed);
        AssertBytes(MemoryMarshal.AsBytes(two.K8.AsSpan()).ToArray(), MemoryMarshal.AsBytes(one.K8.AsSpan()).ToArray(), "k8", seed);
        AssertBytes(MemoryMarshal.AsBytes(two.V8.AsSpan()).ToArray(), MemoryMarshal.AsBytes(one.V8.AsSpan()).ToArray(), "v8", seed);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Without_V_the_pass_writes_K_s_mean_alone_and_V_s_scales_are_1(bool bf16)
    {
        // What Int8Attention's 16-bit P·V mode asks for when it counts nothing: V is not read at all.
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        const int batch = 2, heads = 3, tokens = 777, d = 128;
        var seed = Environment.TickCount;
        var input = bf16 ? Element.BF16 : Element.F16;
        var st = Layout(heads, tokens, d, kBshd: false);
        var k = Tensor(new Random(seed), input, batch, heads, tokens, d, st.KB, st.KH, st.KS, offsets: true);
        var kOptions = new QuantizeOptions
        {
            HeadDim = d, Granularity = QuantGranularity.PerRowBlock, BlockRows = 64, SubtractChannelMean = true,
            MeanSlices = bf16 ? KvStatisticsD128Bf16.MeanLanes : KvStatisticsD128.MeanLanes, MeanSliceTokens = bf16 ? KvStatisticsD128Bf16.SliceTokens : KvStatisticsD128.SliceTokens,
            MeanSliceGroup = KvStatisticsD128.MeanSliceGroup,
        };
        var expected = QuantizeReference.Quantize(k, input, st.KB, st.KH, st.KS, batch, heads, tokens, 1f, kOptions);
        using var kMean = device.Allocate<float>((long)batch * heads * d);
        using var vScale = device.Allocate<float>((long)batch * heads * d);
        using var workspace = device.Allocate<float>(KvStatisticsD128.WorkspaceLength(batch, heads, tokens));
        using var kCount = device.Allocate<uint>(1);
        using var vCount = device.Allocate<uint>(1);
        kMean.FillBytes(Poison);
        vScale.FillBytes(Poison);
        kCount.FillBytes(0);
        vCount.FillBytes(0);
        if (bf16)
        {
            WithInputs<ushort>(stream, k, k, (dk, _) => KvStatisticsD128Bf16.Launch(stream, dk, st.KB, st.KH, st.KS, null, 0, 0, 0, batch, heads, tokens, kMean, vScale, workspace, kCount, vCount));
        }
        else
        {
            WithInputs<Half>(stream, k, k, (dk, _) => KvStatisticsD128.Launch(stream, dk, st.KB, st.KH, st.KS, null, 0, 0, 0, batch, heads, tokens, kMean, vScale, workspace, kCount, vCount));
        }
        AssertBits(expected.ChannelMean!, kMean.ToArray(), "kMean", seed);
        Assert.All(vScale.ToArray(), s => Assert.Equal(1f, s));
        Assert.Equal(0u, kCount.ToArray()[0]);
        Assert.Equal(0u, vCount.ToArray()[0]);
    }
}
