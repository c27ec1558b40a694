using System;
using System.Globalization;
using System.Text;

namespace KernelDsl.Generator.Helpers;

/// <summary>
/// The one text writer every emitter uses: indentation, invariant-culture formatting and "\n" line ends,
/// so generated text is identical on every machine.
/// </summary>
public sealed class CodeWriter
{
    private readonly StringBuilder _text = new();
    private readonly string _indentUnit;
    private int _depth;

    public CodeWriter(string indentUnit = "    ") => _indentUnit = indentUnit;

    /// <summary>Writes one line; interpolated holes are formatted with the invariant culture.</summary>
    public CodeWriter Line(FormattableString line) => Raw(line.ToString(CultureInfo.InvariantCulture));

    public CodeWriter Line() => Raw("");

    /// <summary>Writes text as is, one line per '\n', each indented.</summary>
    public CodeWriter Raw(string text)
    {
        foreach (var line in text.Split('\n'))
        {
            if (line.Length > 0)
            {
                for (var i = 0; i < _depth; i++)
                {
                    _text.Append(_indentUnit);
                }
                _text.Append(line);
            }
            _text.Append('\n');
        }
        return this;
    }

    /// <summary>Writes a header line and "{", runs <paramref name="body"/> one level deeper, then writes the closing line.</summary>
    public CodeWriter Block(FormattableString header, Action body, string close = "}")
    {
        Line(header);
        Raw("{");
        _depth++;
        body();
        _depth--;
        Raw(close);
        return this;
    }

    public CodeWriter Indent()
    {
        _depth++;
        return this;
    }

    public CodeWriter Outdent()
    {
        _depth--;
        return this;
    }

    public override string ToString() => _text.ToString();
}
