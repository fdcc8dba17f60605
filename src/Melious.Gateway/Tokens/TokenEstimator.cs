using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Melious.Gateway.Protocol.Anthropic;

namespace Melious.Gateway.Tokens;

/// <summary>
/// A fast, allocation-free estimate of BPE token counts (cl100k/o200k-style vocabularies, which the common
/// open-weight models' tokenizers resemble). It mimics the pre-tokenizer (words with their leading space,
/// digit triples, punctuation runs, whitespace runs) and prices each piece, instead of running the BPE merges.
/// Calibrated against cl100k_base and o200k_base on Claude Code traffic in
/// <c>tests/Melious.Gateway.Tests/Tokens/TokenEstimatorCalibrationTests.cs</c>.
/// </summary>
public static class TokenEstimator
{
    /// <summary>Chat-template overhead per message (role markers, separators).</summary>
    internal const int PerMessage = 4;

    /// <summary>Overhead of the request itself (assistant turn header, BOS).</summary>
    internal const int PerRequest = 8;

    /// <summary>Chat-template overhead per tool (wrapping object, "function" markers).</summary>
    internal const int PerTool = 15;

    /// <summary>Chat templates add a fixed tool-use preamble once tools are present.</summary>
    internal const int ToolPreamble = 80;

    /// <summary>Rough cost of an image in the prompt (typical vision encoders spend a few hundred to ~1.6k tokens).</summary>
    internal const int PerImage = 1_000;

    public static int Count(string? text) => text is null ? 0 : Count(text.AsSpan());

    public static int Count(ReadOnlySpan<char> text)
    {
        var counter = new Counter();
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (c < 0x80)
            {
                // Runs of ASCII letters, digits or blanks are skipped in one vectorized search.
                var cls = AsciiClass[c];
                var run = cls switch
                {
                    CharClass.Letter => RunLength(text[i..], AsciiLetters16),
                    CharClass.Digit => RunLength(text[i..], AsciiDigits16),
                    CharClass.Space => RunLength(text[i..], Blanks16),
                    _ => 1,
                };
                counter.AddRun(cls, run);
                i += run;
                continue;
            }

            if (Rune.DecodeFromUtf16(text[i..], out var rune, out var used) != System.Buffers.OperationStatus.Done)
            {
                used = 1;
                rune = Rune.ReplacementChar;
            }

            counter.Add(Classify(rune));
            i += used;
        }

        return counter.Finish();
    }

    /// <summary>
    /// Counts <paramref name="text"/> as it appears inside a JSON string (newlines as <c>\n</c>, quotes as <c>\"</c>):
    /// chat templates render tool definitions with <c>tojson</c>, and escapes tokenize worse than the raw characters.
    /// </summary>
    public static int CountAsJsonString(string? text)
    {
        if (text is null)
        {
            return 0;
        }

        var counter = new Counter();
        var span = text.AsSpan();
        var i = 0;
        while (i < span.Length)
        {
            var c = span[i];
            switch (c)
            {
                case '\n' or '\r' or '\t':
                    counter.Add(CharClass.Punct);
                    counter.Add(CharClass.Letter);
                    i++;
                    break;
                case '"' or '\\':
                    counter.Add(CharClass.Punct);
                    counter.Add(CharClass.Punct);
                    i++;
                    break;
                case < (char)0x80 when AsciiClass[c] == CharClass.Letter:
                    var run = RunLength(span[i..], AsciiLetters16);
                    counter.AddRun(CharClass.Letter, run);
                    i += run;
                    break;
                default:
                    counter.Add(c < 0x80 ? AsciiClass[c] : Classify(new Rune(char.IsSurrogate(c) ? '?' : c)));
                    i++;
                    break;
            }
        }

        return counter.Finish();
    }

    public static int CountUtf8(ReadOnlySpan<byte> utf8)
    {
        var counter = new Counter();
        var i = 0;
        while (i < utf8.Length)
        {
            var b = utf8[i];
            if (b < 0x80)
            {
                var cls = AsciiClass[b];
                var run = cls switch
                {
                    CharClass.Letter => RunLength(utf8[i..], AsciiLetters8),
                    CharClass.Digit => RunLength(utf8[i..], AsciiDigits8),
                    CharClass.Space => RunLength(utf8[i..], Blanks8),
                    _ => 1,
                };
                counter.AddRun(cls, run);
                i += run;
                continue;
            }

            if (Rune.DecodeFromUtf8(utf8[i..], out var rune, out var used) != System.Buffers.OperationStatus.Done)
            {
                used = 1;
                rune = Rune.ReplacementChar;
            }

            counter.Add(Classify(rune));
            i += used;
        }

        return counter.Finish();
    }

    private static readonly System.Buffers.SearchValues<char> AsciiLetters16 = System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
    private static readonly System.Buffers.SearchValues<char> AsciiDigits16 = System.Buffers.SearchValues.Create("0123456789");
    private static readonly System.Buffers.SearchValues<char> Blanks16 = System.Buffers.SearchValues.Create(" \t");
    private static readonly System.Buffers.SearchValues<byte> AsciiLetters8 = System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"u8);
    private static readonly System.Buffers.SearchValues<byte> AsciiDigits8 = System.Buffers.SearchValues.Create("0123456789"u8);
    private static readonly System.Buffers.SearchValues<byte> Blanks8 = System.Buffers.SearchValues.Create(" \t"u8);

    private static int RunLength<T>(ReadOnlySpan<T> span, System.Buffers.SearchValues<T> members)
        where T : IEquatable<T>
    {
        var end = span.IndexOfAnyExcept(members);
        return end < 0 ? span.Length : end;
    }

    /// <summary>Estimated upstream <c>prompt_tokens</c> for a request: system, messages, tool schemas and template overhead.</summary>
    public static long EstimateRequest(MessagesRequest request) => Walk<Exact>(request);

    /// <summary>
    /// A bound that <see cref="EstimateRequest"/> never exceeds, in time proportional to the number of blocks rather
    /// than to their text: every counted piece is at least one character (or byte) long, so each text counts at most
    /// its length (twice its length as a JSON string, where an escape can count two). The forwarders use it to tell
    /// whether the estimate can change what is sent upstream; when it cannot, they count while the upstream works.
    /// </summary>
    public static long UpperBound(MessagesRequest request) => Walk<Bound>(request);

    /// <summary>How a text is counted: exactly (<see cref="Exact"/>) or by an upper bound (<see cref="Bound"/>).</summary>
    private interface ITextCounter
    {
        static abstract long Text(string? text);

        static abstract long JsonString(string? text);

        static abstract long Utf8(ReadOnlySpan<byte> utf8);
    }

    private readonly struct Exact : ITextCounter
    {
        public static long Text(string? text) => Count(text);

        public static long JsonString(string? text) => CountAsJsonString(text);

        public static long Utf8(ReadOnlySpan<byte> utf8) => CountUtf8(utf8);
    }

    private readonly struct Bound : ITextCounter
    {
        public static long Text(string? text) => text?.Length ?? 0;

        public static long JsonString(string? text) => 2L * (text?.Length ?? 0);

        public static long Utf8(ReadOnlySpan<byte> utf8) => utf8.Length;
    }

    private static long Walk<TCounter>(MessagesRequest request)
        where TCounter : struct, ITextCounter
    {
        long total = PerRequest;
        if (request.System is { } system)
        {
            total += PerMessage + CountContent<TCounter>(system);
        }

        if (request.Messages is { } messages)
        {
            foreach (var message in messages)
            {
                total += PerMessage;
                if (message.Content is { } content)
                {
                    total += CountContent<TCounter>(content);
                }
            }
        }

        if (request.Tools is { Count: > 0 } tools)
        {
            // A shared (cached) tool list keeps its exact count, which is also a bound.
            total += tools is SharedToolList shared ? shared.EstimatedTokens(EstimateTools<Exact>) : EstimateTools<TCounter>(tools);
        }

        return total;
    }

    private static long EstimateTools<TCounter>(List<ToolDefinition> tools)
        where TCounter : struct, ITextCounter
    {
        long total = ToolPreamble;
        foreach (var tool in tools)
        {
            if (tool.IsServerTool)
            {
                continue;
            }

            total += PerTool + TCounter.Text(tool.Name) + TCounter.JsonString(tool.Description);
            if (tool.InputSchema is { ValueKind: JsonValueKind.Object } schema)
            {
                total += TCounter.Utf8(JsonMarshal.GetRawUtf8Value(schema));
            }
        }

        return total;
    }

    private static long CountContent<TCounter>(MessageContent content)
        where TCounter : struct, ITextCounter
    {
        if (content.Text is not null)
        {
            return TCounter.Text(content.Text);
        }

        long total = 0;
        foreach (var block in content.Blocks ?? [])
        {
            total += CountBlock<TCounter>(block);
        }

        return total;
    }

    private static long CountBlock<TCounter>(ContentBlock block)
        where TCounter : struct, ITextCounter => block switch
    {
        TextBlock text => TCounter.Text(text.Text),
        ThinkingBlock thinking => TCounter.Text(thinking.Thinking),
        ToolUseBlock toolUse => 6 + TCounter.Text(toolUse.Name) + (toolUse.Input is { ValueKind: not JsonValueKind.Undefined } input ? TCounter.Utf8(JsonMarshal.GetRawUtf8Value(input)) : 0),
        ToolResultBlock result => 6 + (result.Content is { } content ? CountContent<TCounter>(content) : 0),
        ImageBlock => PerImage,
        DocumentBlock document => CountDocument<TCounter>(document),
        MidConversationSystemBlock mid => mid.Content is { } content ? CountContent<TCounter>(content) : 0,
        _ => 0,
    };

    private static long CountDocument<TCounter>(DocumentBlock document)
        where TCounter : struct, ITextCounter
    {
        var source = document.Source;
        long total = TCounter.Text(document.Title) + TCounter.Text(document.Context);
        if (source?.Type == "text")
        {
            total += TCounter.Text(source.Data);
        }
        else if (source?.Type == "content" && source.Content is { } content)
        {
            total += CountContent<TCounter>(content);
        }
        else if (source?.Data is { } data)
        {
            // A base64 PDF: roughly one token per 3 bytes of decoded text-bearing content.
            total += data.Length / 4;
        }

        return total;
    }

    private enum CharClass : byte
    {
        Letter,
        Digit,
        Space,
        Newline,
        Punct,
        Ideograph,
    }

    private static readonly CharClass[] AsciiClass = BuildAsciiTable();

    private static CharClass[] BuildAsciiTable()
    {
        var table = new CharClass[128];
        for (var c = 0; c < 128; c++)
        {
            table[c] = c switch
            {
                >= 'a' and <= 'z' or >= 'A' and <= 'Z' => CharClass.Letter,
                >= '0' and <= '9' => CharClass.Digit,
                ' ' or '\t' => CharClass.Space,
                '\n' or '\r' => CharClass.Newline,
                _ => CharClass.Punct,
            };
        }

        return table;
    }

    private static CharClass Classify(Rune rune)
    {
        var value = rune.Value;
        // CJK ideographs, kana, hangul, fullwidth forms: roughly one token per character.
        if (value is >= 0x2E80 and <= 0x9FFF or >= 0xAC00 and <= 0xD7AF or >= 0xF900 and <= 0xFAFF or >= 0xFF00 and <= 0xFFEF or >= 0x20000)
        {
            return CharClass.Ideograph;
        }

        if (Rune.IsLetter(rune))
        {
            return CharClass.Letter;
        }

        if (Rune.IsDigit(rune))
        {
            return CharClass.Digit;
        }

        return Rune.IsWhiteSpace(rune) ? CharClass.Space : CharClass.Punct;
    }

    /// <summary>Folds a stream of character classes into a token estimate, one pre-token piece at a time.</summary>
    private struct Counter
    {
        private int _tokens;
        private CharClass _run;
        private int _runLength;
        private bool _inRun;

        public void Add(CharClass cls) => AddRun(cls, 1);

        /// <summary>Adds <paramref name="length"/> characters of one class (ideographs always count one each).</summary>
        public void AddRun(CharClass cls, int length)
        {
            if (cls == CharClass.Ideograph)
            {
                for (var i = 0; i < length; i++)
                {
                    Close(next: cls);
                    _run = cls;
                    _runLength = 1;
                    _inRun = true;
                }

                return;
            }

            if (_inRun && cls == _run)
            {
                _runLength += length;
                return;
            }

            Close(next: cls);
            _run = cls;
            _runLength = length;
            _inRun = true;
        }

        public int Finish()
        {
            Close(next: null);
            return _tokens;
        }

        private void Close(CharClass? next)
        {
            if (!_inRun)
            {
                return;
            }

            _tokens += _run switch
            {
                CharClass.Letter => WordTokens(_runLength),
                CharClass.Digit => (_runLength + 2) / 3,
                CharClass.Punct => PunctTokens(_runLength, next),
                // A single space (or tab) merges into the following word or punctuation, not into digits
                // (" 42" is two tokens); longer runs are one token.
                CharClass.Space => _runLength == 1 && next is CharClass.Letter or CharClass.Punct ? 0 : 1,
                CharClass.Newline => 1,
                _ => 1,
            };

            _inRun = false;
        }

        // Common words are one token; long identifiers split roughly every six letters.
        private static int WordTokens(int length) => length <= 6 ? 1 : 1 + (length - 2) / 6;

        // A single punctuation character directly before a word is usually merged with it ("_path", ".json");
        // punctuation runs ("\":{\"", "();") merge into few tokens.
        private static int PunctTokens(int length, CharClass? next) =>
            length == 1 && next == CharClass.Letter ? 0 : (length + 3) / 4;
    }
}
