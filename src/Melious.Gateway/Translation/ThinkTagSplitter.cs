using System.Text;
using Melious.Gateway.Routing;

namespace Melious.Gateway.Translation;

/// <summary>How a model's inline <c>&lt;think&gt;…&lt;/think&gt;</c> reasoning is turned into thinking blocks.</summary>
internal enum ThinkTagMode
{
    /// <summary>Content is text, tags and all.</summary>
    None,

    /// <summary>A <c>&lt;think&gt;</c> that opens the answer (after whitespace) starts a thinking block; later tags are text.</summary>
    Leading,

    /// <summary>Every <c>&lt;think&gt;…&lt;/think&gt;</c> in the content is a thinking block.</summary>
    Anywhere,
}

/// <summary>The per-model <c>Reasoning</c> setting (catalog property; <c>melious-admin models set --reasoning</c>).</summary>
public static class ReasoningModes
{
    /// <summary>Default: inline tags are recognised at the start of the answer for flavours that serve them by default (Ollama, llama.cpp).</summary>
    public const string Auto = "auto";

    /// <summary>Reasoning arrives inline as <c>&lt;think&gt;…&lt;/think&gt;</c> (a server started without a reasoning parser).</summary>
    public const string ThinkTags = "think-tags";

    /// <summary>Reasoning arrives only in <c>reasoning</c>/<c>reasoning_content</c>: content is never split.</summary>
    public const string Field = "field";

    public static readonly string[] All = [Auto, ThinkTags, Field];

    internal static ThinkTagMode ModeOf(ModelEntry model) => model.Reasoning?.ToLowerInvariant() switch
    {
        ThinkTags => ThinkTagMode.Anywhere,
        Field => ThinkTagMode.None,
        _ => model.Flavor?.ToLowerInvariant() is "ollama" or "llamacpp" or "llama.cpp" or "llama-cpp" ? ThinkTagMode.Leading : ThinkTagMode.None,
    };
}

/// <summary>
/// Splits streamed content into text and thinking at <c>&lt;think&gt;</c> / <c>&lt;/think&gt;</c>, which may be split
/// across chunks: a possible partial tag at the end of a piece is held back until the next one decides it. The
/// whitespace models put around the tags (<c>&lt;/think&gt;\n\n</c>) is dropped. What is held at the end of the
/// stream goes out as what it was inside (an unclosed thinking block simply ends).
/// </summary>
internal sealed class ThinkTagSplitter(ThinkTagMode mode)
{
    private const string Open = "<think>";
    private const string Close = "</think>";

    private readonly StringBuilder _held = new();
    private State _state = mode == ThinkTagMode.None ? State.Plain : State.Start;

    private enum State
    {
        Start,
        Thinking,
        AfterClose,
        Scanning,
        Plain,
    }

    /// <summary>True while the content is inside a thinking block.</summary>
    public bool InThinking => _state == State.Thinking;

    public void Push(string text, List<(bool Thinking, string Text)> output)
    {
        string s;
        if (_held.Length > 0)
        {
            s = _held.Append(text).ToString();
            _held.Clear();
        }
        else
        {
            s = text;
        }

        var i = 0;
        while (i < s.Length)
        {
            switch (_state)
            {
                case State.Start:
                {
                    var j = SkipWhitespace(s, i);
                    if (j == s.Length)
                    {
                        _held.Append(s, i, s.Length - i);
                        return;
                    }

                    if (string.CompareOrdinal(s, j, Open, 0, Open.Length) == 0 && s.Length - j >= Open.Length)
                    {
                        _state = State.Thinking;
                        i = SkipWhitespace(s, j + Open.Length);
                        continue;
                    }

                    if (Open.StartsWith(s[j..], StringComparison.Ordinal))
                    {
                        _held.Append(s, i, s.Length - i);
                        return;
                    }

                    _state = mode == ThinkTagMode.Anywhere ? State.Scanning : State.Plain;
                    continue;
                }

                case State.Thinking:
                {
                    var close = s.IndexOf(Close, i, StringComparison.Ordinal);
                    if (close >= 0)
                    {
                        Add(output, true, s[i..close].TrimEnd());
                        _state = State.AfterClose;
                        i = close + Close.Length;
                        continue;
                    }

                    var partial = PartialSuffix(s, i, Close);
                    Add(output, true, s[i..(s.Length - partial)]);
                    _held.Append(s, s.Length - partial, partial);
                    return;
                }

                case State.AfterClose:
                    i = SkipWhitespace(s, i);
                    if (i < s.Length)
                    {
                        _state = mode == ThinkTagMode.Anywhere ? State.Scanning : State.Plain;
                    }

                    continue;

                case State.Scanning:
                {
                    var open = s.IndexOf(Open, i, StringComparison.Ordinal);
                    if (open >= 0)
                    {
                        Add(output, false, s[i..open]);
                        _state = State.Thinking;
                        i = SkipWhitespace(s, open + Open.Length);
                        continue;
                    }

                    var partial = PartialSuffix(s, i, Open);
                    Add(output, false, s[i..(s.Length - partial)]);
                    _held.Append(s, s.Length - partial, partial);
                    return;
                }

                default:
                    Add(output, false, s[i..]);
                    return;
            }
        }
    }

    /// <summary>Releases what is held (at the end of the stream, or before a tool call).</summary>
    public void Flush(List<(bool Thinking, string Text)> output)
    {
        if (_held.Length == 0)
        {
            return;
        }

        var held = _held.ToString();
        _held.Clear();
        switch (_state)
        {
            case State.Thinking:
                Add(output, true, held);
                break;
            case State.Start when string.IsNullOrWhiteSpace(held):
                break;
            default:
                Add(output, false, held);
                if (_state == State.Start)
                {
                    _state = mode == ThinkTagMode.Anywhere ? State.Scanning : State.Plain;
                }

                break;
        }
    }

    private static void Add(List<(bool Thinking, string Text)> output, bool thinking, string text)
    {
        if (text.Length > 0)
        {
            output.Add((thinking, text));
        }
    }

    private static int SkipWhitespace(string s, int i)
    {
        while (i < s.Length && char.IsWhiteSpace(s[i]))
        {
            i++;
        }

        return i;
    }

    /// <summary>Length of the longest suffix of <c>s[from..]</c> that is a proper prefix of <paramref name="tag"/>.</summary>
    private static int PartialSuffix(string s, int from, string tag)
    {
        for (var length = Math.Min(tag.Length - 1, s.Length - from); length > 0; length--)
        {
            if (string.CompareOrdinal(s, s.Length - length, tag, 0, length) == 0)
            {
                return length;
            }
        }

        return 0;
    }
}
