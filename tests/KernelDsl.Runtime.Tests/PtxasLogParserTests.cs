namespace KernelDsl.Runtime.Tests;

public class PtxasLogParserTests
{
    // Verbatim from NVRTC 11.8 (-arch=sm_80 --ptxas-options=-v); the second kernel is the device-function case.
    private const string Nvrtc118Log = """
        ptxas info    : 0 bytes gmem
        ptxas info    : Compiling entry function 'spill' for 'sm_80'
        ptxas info    : Function properties for spill
        ptxas         .     1024 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
        ptxas info    : Used 32 registers, 4096 bytes smem, 372 bytes cmem[0]
        ptxas info    : Compiling entry function 'k' for 'sm_80'
        ptxas info    : Function properties for k
        ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas info    : Used 10 registers, 368 bytes cmem[0]
        """;

    [Fact]
    public void Each_entry_gets_its_registers_stack_spills_and_memory()
    {
        var kernels = PtxasLogParser.Parse(Nvrtc118Log);

        Assert.Equal(
            [
                new PtxasKernelReport("spill", "sm_80", 32, 1024, 8, 12, 4096, 372),
                new PtxasKernelReport("k", "sm_80", 10, 0, 0, 0, 0, 368),
            ],
            kernels);
    }

    [Fact]
    public void Newer_used_line_items_and_device_function_properties_do_not_confuse_it()
    {
        const string log = """
            ptxas info    : Compiling entry function 'attention_fwd' for 'sm_90a'
            ptxas info    : Function properties for helper
            ptxas         .     64 bytes stack frame, 64 bytes spill stores, 64 bytes spill loads
            ptxas info    : Function properties for attention_fwd
            ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Used 168 registers, used 1 barriers, 576 bytes cmem[0]
            ptxas info    : Compile time = 12.345 ms
            """;

        var kernel = Assert.Single(PtxasLogParser.Parse(log));

        Assert.Equal(new PtxasKernelReport("attention_fwd", "sm_90a", 168, 0, 0, 0, 0, 576), kernel);
    }

    [Fact]
    public void Properties_printed_before_their_entry_line_still_count()
    {
        const string log = """
            ptxas info    : Function properties for late
            ptxas         .     48 bytes stack frame, 40 bytes spill stores, 44 bytes spill loads
            ptxas info    : Compiling entry function 'late' for 'sm_90'
            ptxas info    : Used 255 registers
            """;

        var kernel = Assert.Single(PtxasLogParser.Parse(log));

        Assert.Equal(new PtxasKernelReport("late", "sm_90", 255, 48, 40, 44, 0, 0), kernel);
    }

    [Fact]
    public void A_log_without_a_ptxas_report_has_no_kernels()
    {
        Assert.Empty(PtxasLogParser.Parse(""));
        Assert.Empty(PtxasLogParser.Parse("kernel.cu(3): warning #177-D: variable \"x\" was declared but never referenced"));
    }
}
