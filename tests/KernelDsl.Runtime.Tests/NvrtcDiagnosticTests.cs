namespace KernelDsl.Runtime.Tests;

public class NvrtcDiagnosticTests
{
    private const string Source = "line one\nline two\nline three\n";

    [Fact]
    public void Located_messages_of_the_program_are_paired_with_their_source_lines()
    {
        const string log = """
            V.cu(2): error: identifier "y" is undefined

            V.cu(3): warning #177-D: variable "x" was declared but never referenced
            Other.cu(1): error: not ours
            V.cu(40): catastrophic error: beyond the source
            nvrtc: error: invalid value for --gpu-architecture (-arch)
            1 error detected in the compilation of "V.cu".
            """;

        var diagnostics = NvrtcDiagnostic.FromLog(log, "V.cu", Source);

        Assert.Equal(
            [
                new NvrtcDiagnostic(2, "error", "identifier \"y\" is undefined", "line two"),
                new NvrtcDiagnostic(3, "warning", "variable \"x\" was declared but never referenced", "line three"),
                new NvrtcDiagnostic(40, "catastrophic error", "beyond the source", null),
            ],
            diagnostics);
    }

    [Fact]
    public void Formatting_quotes_the_line_under_the_message()
    {
        var text = new NvrtcDiagnostic(2, "error", "boom", "line two").Format("V.cu");

        Assert.Equal($"V.cu(2): error: boom{Environment.NewLine}        2 | line two", text);
    }
}
