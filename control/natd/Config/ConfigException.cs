namespace Natd.Control.Config;

/// <summary>
/// A configuration was rejected. A bad configuration is rejected whole: nothing of it is applied.
/// <see cref="Exception.Message"/> holds every error, one per line, in the form
/// "natd.yaml:7:10: nat.ports: '70000-1' is not a port range (...)".
/// </summary>
public sealed class ConfigException : Exception
{
    /// <summary>Creates the exception from the errors found (at least one).</summary>
    /// <param name="errors">Every error found, in document order.</param>
    /// <exception cref="ArgumentException"><paramref name="errors"/> is empty.</exception>
    public ConfigException(IReadOnlyList<ConfigDiagnostic> errors)
        : base(FormatMessage(errors))
    {
        Errors = errors;
    }

    /// <summary>Every error found (not only the first), in document order.</summary>
    public IReadOnlyList<ConfigDiagnostic> Errors { get; }

    private static string FormatMessage(IReadOnlyList<ConfigDiagnostic> errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        if (errors.Count == 0)
        {
            throw new ArgumentException("a configuration error needs at least one diagnostic", nameof(errors));
        }
        return string.Join('\n', errors);
    }
}
