using System.Text;
using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Fuzzing.Targets;

/// <summary>
/// Fuzz target "config": the input, as UTF-8 text, through the natd configuration loader
/// (<see cref="ConfigLoader.Parse"/>). Invariants (violations throw
/// <see cref="FuzzInvariantException"/>): only <see cref="ConfigException"/> escapes; every
/// diagnostic of a rejection names the file, a line and a column (1-based) and a key path in the
/// loader's "file:line:column: key: message" form (only errors of the document itself concern no
/// key: YAML syntax, a dangling alias, a document that is not a mapping, an empty top-level key); a configuration the loader accepts starts an engine.
/// </summary>
public static class ConfigTarget
{
    /// <summary>The file name the target gives the loader.</summary>
    public const string SourceName = "fuzz.yaml";

    /// <summary>Runs one input; throws <see cref="FuzzInvariantException"/> when an invariant fails.</summary>
    public static void Run(ReadOnlySpan<byte> input)
    {
        string text = Encoding.UTF8.GetString(input);
        NatdConfig config;
        try
        {
            config = ConfigLoader.Parse(text, SourceName);
        }
        catch (ConfigException e)
        {
            if (e.Errors.Count == 0)
            {
                throw new FuzzInvariantException("config: rejected without a diagnostic");
            }
            foreach (ConfigDiagnostic d in e.Errors)
            {
                Check(d);
            }
            return;
        }
        // Accepted: the engine takes it (an empty pool or impossible port range would throw here).
        _ = new NatEngine(config.Nat, new MacAddress(0x02_00_00_00_00_01), new MacAddress(0x02_00_00_00_00_02), new EngineOptions { Seed = 1 });
    }

    private static void Check(ConfigDiagnostic d)
    {
        string s = d.ToString();
        if (d.Source != SourceName || d.Line < 1 || d.Column < 1)
        {
            throw new FuzzInvariantException($"config: diagnostic without file:line:column: {s}");
        }
        // Errors of the document itself name no key: YAML syntax, an alias with no anchor, a
        // document that is not a mapping, a second document, a top-level key that is the empty
        // string or not a scalar at all (there is no key to name), and a file over the size limit.
        bool wholeDocument = d.Message.StartsWith("not valid YAML", StringComparison.Ordinal)
            || d.Message.StartsWith("alias ", StringComparison.Ordinal)
            || d.Message.StartsWith("expected a mapping", StringComparison.Ordinal)
            || d.Message.StartsWith("unknown key ''", StringComparison.Ordinal)
            || d.Message.StartsWith("duplicate key ''", StringComparison.Ordinal)
            || d.Message.StartsWith("the file holds more than one YAML document", StringComparison.Ordinal)
            || d.Message.StartsWith("a key must be a plain word", StringComparison.Ordinal)
            || d.Message.StartsWith("the file is larger than", StringComparison.Ordinal);
        if (d.Path.Length == 0 && !wholeDocument)
        {
            throw new FuzzInvariantException($"config: diagnostic names no key: {s}");
        }
        string prefix = d.Path.Length > 0 ? $"{SourceName}:{d.Line}:{d.Column}: {d.Path}: " : $"{SourceName}:{d.Line}:{d.Column}: ";
        if (!s.StartsWith(prefix, StringComparison.Ordinal) || d.Message.Length == 0)
        {
            throw new FuzzInvariantException($"config: diagnostic not in the form file:line:column: key: message: {s}");
        }
    }
}
