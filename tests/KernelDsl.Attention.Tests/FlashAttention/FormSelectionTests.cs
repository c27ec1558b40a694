using KernelDsl;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Launching;

namespace AttentionTests.FlashAttention;

/// <summary>
/// Choosing among a variant's forms (Int8Attention.FormsOf, Fastest): which kernels are a family's forms, and which of
/// them may compete for given tensors on a given device. The timing itself runs on a GPU (ModifierVariantGpuTests).
/// </summary>
public class FormSelectionTests
{
    private static string Form(AttentionKernelInfo k) => k.Name[(k.Name.LastIndexOf('.') + 1)..];

    [Fact]
    public void A_familys_forms_are_its_kernels_of_one_pv_mode()
    {
        Assert.Equal(["D128", "D128Bf16", "D128Wgmma", "D128WgmmaBlockM64", "D128WgmmaFusedQ", "D128WgmmaPersistent"],
            Int8Attention.FormsOf(typeof(SlidingWindow)).Select(Form).Order(StringComparer.Ordinal));
        Assert.Equal(["D128F16PV"], Int8Attention.FormsOf(typeof(SlidingWindow), Element.F16).Select(Form));
        Assert.Equal(["D128Bf16PV"], Int8Attention.FormsOf(typeof(SlidingWindow), Element.BF16).Select(Form));
        // Alibi also nests a decode kernel (PagedDecodeD128), which is no attention form.
        Assert.Equal(["D128", "D128Bf16", "D128Wgmma", "D128WgmmaBlockM64", "D128WgmmaFusedQ", "D128WgmmaPersistent"],
            Int8Attention.FormsOf(typeof(Alibi)).Select(Form).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_type_without_forms_or_without_that_pv_mode_is_refused_by_name()
    {
        var none = Assert.Throws<ArgumentException>(() => Int8Attention.FormsOf(typeof(string)));
        Assert.Equal("family", none.ParamName);
        Assert.Contains("No declared attention kernel is nested in System.String", none.Message);
        var fp8 = Assert.Throws<ArgumentException>(() => Int8Attention.FormsOf(typeof(SlidingWindow), Element.E4M3));
        Assert.Equal("pv", fp8.ParamName);
        Assert.Contains("has E4M3 P·V", fp8.Message);
    }

    [Fact]
    public void The_candidates_are_the_forms_that_take_the_tensors_and_run_on_the_device()
    {
        var forms = Int8Attention.FormsOf(typeof(SlidingWindow));
        Assert.Equal(["D128", "D128Wgmma", "D128WgmmaBlockM64", "D128WgmmaFusedQ", "D128WgmmaPersistent"],
            Int8Attention.FormCandidates(forms, Element.F16, 128, 90).Select(Form).Order(StringComparer.Ordinal));
        // sm_80 runs the mma.sync form alone; bf16 tensors take the bf16 form.
        Assert.Equal(["D128"], Int8Attention.FormCandidates(forms, Element.F16, 128, 80).Select(Form));
        Assert.Equal(["D128Bf16"], Int8Attention.FormCandidates(forms, Element.BF16, 128, 90).Select(Form));
    }

    [Fact]
    public void Forms_of_different_attention_or_precision_are_refused_before_any_work()
    {
        var window = Int8Attention.FormsOf(typeof(SlidingWindow));
        var alibi = Int8Attention.FormsOf(typeof(Alibi));
        var mixed = Assert.Throws<ArgumentException>(() => Int8Attention.FormCandidates([window[0], alibi[0]], Element.F16, 128, 90));
        Assert.Equal("forms", mixed.ParamName);
        Assert.Contains("differ in their modifiers", mixed.Message);
        var precision = Assert.Throws<ArgumentException>(() => Int8Attention.FormCandidates(
            [window[0], Int8Attention.FormsOf(typeof(SlidingWindow), Element.F16)[0]], Element.F16, 128, 90));
        Assert.Contains("differ in their P·V mode", precision.Message);
        var headDim = Assert.Throws<ArgumentException>(() => Int8Attention.FormCandidates(window, Element.F16, 64, 90));
        Assert.Contains("None of the forms takes F16 tensors with head dim 64", headDim.Message);
        var hopperOnly = window.Where(k => k.Name.Contains("Wgmma", StringComparison.Ordinal)).ToArray();
        var device = Assert.Throws<ArgumentException>(() => Int8Attention.FormCandidates(hopperOnly, Element.F16, 128, 80));
        Assert.Contains("runs on sm_80", device.Message);
        Assert.Throws<ArgumentException>(() => Int8Attention.FormCandidates([], Element.F16, 128, 90));
    }

    [Fact]
    public void Forms_listed_twice_or_without_the_lse_asked_for_are_refused_or_left_out()
    {
        var window = Int8Attention.FormsOf(typeof(SlidingWindow));
        var twice = Assert.Throws<ArgumentException>(() => Int8Attention.FormCandidates([window[0], window[1], window[0]], Element.F16, 128, 90));
        Assert.Contains($"forms lists {window[0].Name} 2 times", twice.Message);
        // Every library form writes an LSE; one declared without is left out when the caller asks for it.
        var noLse = window[0] with { Name = window[0].Name + "NoLse", Lse = false };
        Assert.DoesNotContain(noLse, Int8Attention.FormCandidates([noLse, .. window], Element.F16, 128, 90, writesLse: true));
        Assert.Contains(noLse, Int8Attention.FormCandidates([noLse, .. window], Element.F16, 128, 90));
        var none = Assert.Throws<ArgumentException>(() => Int8Attention.FormCandidates([noLse], Element.F16, 128, 90, writesLse: true));
        Assert.Contains("and writes an LSE", none.Message);
    }

    [Fact]
    public void The_tuning_key_names_the_forms_sorted_the_arguments_and_the_shape()
    {
        var forms = Int8Attention.FormCandidates(Int8Attention.FormsOf(typeof(SlidingWindow)), Element.F16, 128, 90);
        var key = Int8Attention.FormsKey(forms, new ModifierArguments().Set("window", 1024), "shape");
        Assert.Equal(key, Int8Attention.FormsKey(forms.Reverse().ToArray(), new ModifierArguments().Set("window", 1024), "shape"));
        Assert.EndsWith("|window=1024|shape", key);
        Assert.StartsWith("forms|KernelDsl.Attention.FlashAttention.SlidingWindow.D128,", key);
        // Another window can make another form the fastest, so it is another key.
        Assert.NotEqual(key, Int8Attention.FormsKey(forms, new ModifierArguments().Set("window", 64), "shape"));
        Assert.EndsWith("|cap=0.1|shape", Int8Attention.FormsKey(forms, new ModifierArguments().Set("cap", 0.1f), "shape"));
    }
}
