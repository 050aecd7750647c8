using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Natd.Control.Config;

/// <summary>A node of the configuration document with the position it started at (1-based line and column).</summary>
internal abstract class YNode(Mark start)
{
    public Mark Start { get; } = start;

    /// <summary>Kind as named in error messages ("a mapping", "a list", "a scalar").</summary>
    public abstract string KindName { get; }
}

/// <summary>A scalar; <see cref="IsNull"/> for an empty, "~" or "null" plain scalar (a key with no value).</summary>
internal sealed class YScalar(Mark start, string value, bool isNull) : YNode(start)
{
    public string Value { get; } = value;

    public bool IsNull { get; } = isNull;

    public override string KindName => IsNull ? "nothing" : "a scalar";
}

internal sealed class YSequence(Mark start, List<YNode> items) : YNode(start)
{
    public IReadOnlyList<YNode> Items { get; } = items;

    public override string KindName => "a list";
}

internal sealed class YMapping(Mark start, List<KeyValuePair<YScalar, YNode>> entries) : YNode(start)
{
    public IReadOnlyList<KeyValuePair<YScalar, YNode>> Entries { get; } = entries;

    public override string KindName => "a mapping";

    public YNode? Get(string key)
    {
        foreach (var e in Entries)
        {
            if (e.Key.Value == key)
            {
                return e.Value;
            }
        }
        return null;
    }
}

/// <summary>
/// A collection nested deeper than <see cref="YamlTreeReader.MaxDepth"/>: the document is refused
/// before anything recursing over it runs.
/// </summary>
internal sealed class YamlNestingException(Mark start, string path)
    : Exception($"lists and mappings nested more than {YamlTreeReader.MaxDepth} deep; natd.yaml nests about 5 deep, so the file is refused")
{
    /// <summary>Where the first collection past the limit starts.</summary>
    public Mark Start { get; } = start;

    /// <summary>Key path of that collection, as in every other configuration error.</summary>
    public string Path { get; } = path;
}

/// <summary>
/// Builds a <see cref="YNode"/> tree from YamlDotNet's parser events. YamlDotNet's own
/// representation model (YamlStream) stops at the first duplicate key with an exception; building
/// the tree here lets every duplicate be reported together with every other error, each with its mark.
/// </summary>
internal sealed class YamlTreeReader
{
    /// <summary>
    /// Most lists and mappings that may enclose one another; the root mapping is the first. natd.yaml
    /// needs about 5; the cap keeps every walk over the tree (ours, the validator's) shallow.
    /// </summary>
    internal const int MaxDepth = 64;

    private readonly IParser _parser;
    private readonly Action<Mark, string, string> _error;
    private readonly Dictionary<string, YNode> _anchors = new(StringComparer.Ordinal);

    private YamlTreeReader(IParser parser, Action<Mark, string, string> error)
    {
        _parser = parser;
        _error = error;
    }

    /// <summary>
    /// Reads the single document of <paramref name="text"/>; null when the stream is empty.
    /// Structural problems (duplicate or non-scalar keys, unknown aliases, several documents) go to
    /// <paramref name="error"/> as (mark, key path, message); YAML syntax errors throw
    /// <see cref="YamlException"/>, with the last good position in <paramref name="lastMark"/> for the
    /// few malformed inputs where YamlDotNet's scanner throws InvalidOperationException instead.
    /// A document nested deeper than <see cref="MaxDepth"/> throws <see cref="YamlNestingException"/>
    /// from a first flat pass over the events, before the tree is built.
    /// </summary>
    public static YNode? Read(string text, Action<Mark, string, string> error, out Func<Mark> lastMark)
    {
        var reader = new YamlTreeReader(new Parser(new StringReader(text)), error);
        lastMark = () => reader._lastMark;
        CheckNesting(new Parser(new StringReader(text)));
        return reader.ReadStream();
    }

    /// <summary>
    /// Builds the tree without the first pass: <see cref="ReadNode"/>'s own depth bound is then the
    /// only guard (it throws <see cref="YamlNestingException"/> at the same node). For tests.
    /// </summary>
    internal static YNode? ReadTreeOnly(string text, Action<Mark, string, string> error)
        => new YamlTreeReader(new Parser(new StringReader(text)), error).ReadStream();

    /// <summary>Where a collection stands while <see cref="CheckNesting"/> walks it.</summary>
    private sealed class Frame(string path, bool isMapping)
    {
        public string Path { get; } = path;
        public bool IsMapping { get; } = isMapping;
        public int Index { get; set; }          // next item of a list
        public bool AtValue { get; set; }       // a mapping's next node is a value, not a key
        public string ValuePath { get; set; } = path;
    }

    /// <summary>
    /// One pass over the parser's events in a loop, keeping only a stack of at most
    /// <see cref="MaxDepth"/> frames. YamlDotNet's scanner and parser keep their own state in
    /// explicit stacks, not on the call stack (a 20000-deep '[' or '{' parses on a 128 KiB thread),
    /// but its work grows with depth faster than linearly, so the walk stops at the first node past
    /// the limit instead of reading on. Key paths follow <see cref="ReadNode"/>'s.
    /// </summary>
    private static void CheckNesting(IParser parser)
    {
        var frames = new Stack<Frame>();
        while (true)
        {
            try
            {
                if (!parser.MoveNext())
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is YamlException or InvalidOperationException)
            {
                // Every node before the syntax error is within the limit; the second pass meets the
                // same error at the same event, after collecting the errors that come before it.
                return;
            }
            ParsingEvent e = parser.Current!;
            switch (e)
            {
                case SequenceStart or MappingStart:
                    string path = NodePath(frames);
                    if (frames.Count >= MaxDepth)
                    {
                        throw new YamlNestingException(e.Start, path);
                    }
                    frames.Push(new Frame(path, e is MappingStart));
                    break;
                case SequenceEnd or MappingEnd:
                    frames.Pop();
                    NodeDone(frames, key: null);
                    break;
                case Scalar scalar:
                    NodeDone(frames, scalar.Value);
                    break;
                case AnchorAlias:
                    NodeDone(frames, key: null);
                    break;
            }
        }
    }

    private static string NodePath(Stack<Frame> frames)
    {
        if (!frames.TryPeek(out var f))
        {
            return "";
        }
        if (!f.IsMapping)
        {
            return string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{f.Path}[{f.Index}]");
        }
        return f.AtValue ? f.ValuePath : f.Path;
    }

    /// <summary>A node ended inside the top frame; <paramref name="key"/> is its text when it was a scalar.</summary>
    private static void NodeDone(Stack<Frame> frames, string? key)
    {
        if (!frames.TryPeek(out var f))
        {
            return;
        }
        if (!f.IsMapping)
        {
            f.Index++;
        }
        else if (!f.AtValue)
        {
            f.ValuePath = key is null ? f.Path : Child(f.Path, key);
            f.AtValue = true;
        }
        else
        {
            f.AtValue = false;
        }
    }

    private Mark _lastMark = Mark.Empty;

    private bool TryConsume<T>([System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out T e) where T : ParsingEvent
    {
        if (_parser.TryConsume(out e))
        {
            _lastMark = e.End;
            return true;
        }
        return false;
    }

    private T Consume<T>() where T : ParsingEvent
    {
        var e = _parser.Consume<T>();
        _lastMark = e.End;
        return e;
    }

    private static string Child(string path, string key) => path.Length == 0 ? key : path + "." + key;

    private YNode? ReadStream()
    {
        Consume<StreamStart>();
        if (TryConsume<StreamEnd>(out _))
        {
            return null;
        }
        Consume<DocumentStart>();
        YNode root = ReadNode("", 0);
        Consume<DocumentEnd>();
        if (!TryConsume<StreamEnd>(out _))
        {
            var next = Consume<DocumentStart>();
            _error(next.Start, "", "the file holds more than one YAML document; natd.yaml must be a single document");
        }
        return root;
    }

    /// <summary>Reads one node at <paramref name="path"/>, inside <paramref name="depth"/> collections.</summary>
    /// <exception cref="YamlNestingException">A collection inside <see cref="MaxDepth"/> others.</exception>
    private YNode ReadNode(string path, int depth)
    {
        if (TryConsume<Scalar>(out var scalar))
        {
            bool isNull = scalar.Style == ScalarStyle.Plain
                && scalar.Value is "" or "~" or "null" or "Null" or "NULL";
            return Remember(scalar.Anchor, new YScalar(scalar.Start, scalar.Value, isNull));
        }
        if (TryConsume<SequenceStart>(out var seqStart))
        {
            if (depth >= MaxDepth)
            {
                throw new YamlNestingException(seqStart.Start, path);
            }
            var items = new List<YNode>();
            while (!TryConsume<SequenceEnd>(out _))
            {
                items.Add(ReadNode(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{path}[{items.Count}]"), depth + 1));
            }
            return Remember(seqStart.Anchor, new YSequence(seqStart.Start, items));
        }
        if (TryConsume<MappingStart>(out var mapStart))
        {
            if (depth >= MaxDepth)
            {
                throw new YamlNestingException(mapStart.Start, path);
            }
            var entries = new List<KeyValuePair<YScalar, YNode>>();
            var seen = new Dictionary<string, YScalar>(StringComparer.Ordinal);
            while (!TryConsume<MappingEnd>(out _))
            {
                YNode key = ReadNode(path, depth + 1);
                YNode value = ReadNode(key is YScalar k ? Child(path, k.Value) : path, depth + 1);
                if (key is not YScalar keyScalar)
                {
                    _error(key.Start, path, $"a key must be a plain word, not {key.KindName}");
                    continue;
                }
                if (seen.TryGetValue(keyScalar.Value, out var first))
                {
                    _error(keyScalar.Start, Child(path, keyScalar.Value), $"duplicate key '{keyScalar.Value}' (first defined at line {first.Start.Line})");
                    continue;
                }
                seen.Add(keyScalar.Value, keyScalar);
                entries.Add(new(keyScalar, value));
            }
            return Remember(mapStart.Anchor, new YMapping(mapStart.Start, entries));
        }
        var alias = Consume<AnchorAlias>();
        if (_anchors.TryGetValue(alias.Value.Value, out var target))
        {
            return target;
        }
        _error(alias.Start, path, $"alias '*{alias.Value.Value}' names no anchor defined before it");
        return new YScalar(alias.Start, "", isNull: true);
    }

    private YNode Remember(AnchorName anchor, YNode node)
    {
        if (!anchor.IsEmpty)
        {
            _anchors[anchor.Value] = node;
        }
        return node;
    }
}
