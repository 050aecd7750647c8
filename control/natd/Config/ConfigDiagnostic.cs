using System.Globalization;

namespace Natd.Control.Config;

/// <summary>
/// One error or warning found in a configuration file, with where it is and which key it concerns.
/// </summary>
/// <param name="Source">File name or path the text came from (as given to the loader).</param>
/// <param name="Line">1-based line of the offending node; 0 when the problem has no position (e.g. unreadable file).</param>
/// <param name="Column">1-based column of the offending node; 0 when unknown.</param>
/// <param name="Path">Key path, e.g. "nat.ports" or "interfaces.inside.networks[1]"; empty for the whole document.</param>
/// <param name="Message">What is wrong and what is accepted.</param>
public sealed record ConfigDiagnostic(string Source, long Line, long Column, string Path, string Message)
{
    /// <summary>
    /// The compiler-style form "natd.yaml:7:10: nat.ports: message", the form operators see in logs
    /// and in the message of <see cref="ConfigException"/>.
    /// </summary>
    public override string ToString()
    {
        string where = Line > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{Source}:{Line}:{Column}")
            : Source;
        return Path.Length > 0 ? $"{where}: {Path}: {Message}" : $"{where}: {Message}";
    }
}
