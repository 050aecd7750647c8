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
/// Builds a <see cref="YNode"/> tree from YamlDotNet's parser events. YamlDotNet's own
/// representation model (YamlStream) stops at the first duplicate key with an exception; building
/// the tree here lets every duplicate be reported together with every other error, each with its mark.
/// </summary>
internal sealed class YamlTreeReader
{
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
    /// </summary>
    public static YNode? Read(string text, Action<Mark, string, string> error, out Func<Mark> lastMark)
    {
        var reader = new YamlTreeReader(new Parser(new StringReader(text)), error);
        lastMark = () => reader._lastMark;
        return reader.ReadStream();
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
        YNode root = ReadNode("");
        Consume<DocumentEnd>();
        if (!TryConsume<StreamEnd>(out _))
        {
            var next = Consume<DocumentStart>();
            _error(next.Start, "", "the file holds more than one YAML document; natd.yaml must be a single document");
        }
        return root;
    }

    private YNode ReadNode(string path)
    {
        if (TryConsume<Scalar>(out var scalar))
        {
            bool isNull = scalar.Style == ScalarStyle.Plain
                && scalar.Value is "" or "~" or "null" or "Null" or "NULL";
            return Remember(scalar.Anchor, new YScalar(scalar.Start, scalar.Value, isNull));
        }
        if (TryConsume<SequenceStart>(out var seqStart))
        {
            var items = new List<YNode>();
            while (!TryConsume<SequenceEnd>(out _))
            {
                items.Add(ReadNode(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{path}[{items.Count}]")));
            }
            return Remember(seqStart.Anchor, new YSequence(seqStart.Start, items));
        }
        if (TryConsume<MappingStart>(out var mapStart))
        {
            var entries = new List<KeyValuePair<YScalar, YNode>>();
            var seen = new Dictionary<string, YScalar>(StringComparer.Ordinal);
            while (!TryConsume<MappingEnd>(out _))
            {
                YNode key = ReadNode(path);
                YNode value = ReadNode(key is YScalar k ? Child(path, k.Value) : path);
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
