using System.Globalization;

namespace Natd.Benchmarks.Support;

/// <summary>Arguments of the in-process modes (<c>--allocation</c>, <c>--wakeup</c>, ...) that take one count option.</summary>
public static class ModeArguments
{
    /// <summary>
    /// Reads <c>[option N]</c> from <paramref name="args"/>: N a positive integer (invariant culture),
    /// <paramref name="count"/> left at its default when the option is absent. Anything else is
    /// written to standard error, prefixed with <paramref name="mode"/>, and gives false (the mode
    /// then exits 2).
    /// </summary>
    public static bool TryCount(IReadOnlyList<string> args, string mode, string option, ref int count)
    {
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] == option && i + 1 < args.Count && int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out int n) && n > 0)
            {
                count = n;
                i++;
            }
            else
            {
                Console.Error.WriteLine($"{mode}: unknown or malformed argument '{args[i]}' ({option} N)");
                return false;
            }
        }
        return true;
    }
}
