using System.Globalization;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;

namespace Natd.Control.Config;

// The pcp section: the Port Control Protocol server's policy (RFC 6887, NAT-PMP RFC 6886).
public static partial class ConfigLoader
{
    private static readonly string[] PcpKeys = ["enabled", "max-lifetime", "min-lifetime", "mappings-per-subscriber", "allowed-ports", "third-party", "requests-per-second", "all-ports"];

    private sealed partial class Validator
    {
        /// <summary>
        /// Reads the <c>pcp</c> section; each bad key is an error naming it, min-lifetime above
        /// max-lifetime is refused, and so is <c>all-ports: true</c> with <paramref name="allocation"/> dynamic.
        /// </summary>
        private PcpSettings Pcp(YNode? node, PortAllocation allocation)
        {
            var d = new PcpSettings();
            YMapping? m = Mapping(node, "pcp");
            Keys(m, "pcp", PcpKeys);
            if (m is null)
            {
                return d;
            }
            int max = (int)Integer(m.Get("max-lifetime"), "pcp.max-lifetime", d.MaxLifetime, 1, 7 * 86400, "seconds");
            int min = (int)Integer(m.Get("min-lifetime"), "pcp.min-lifetime", d.MinLifetime, 1, 7 * 86400, "seconds");
            if (min > max && m.Get("min-lifetime") is { } minNode)
            {
                Error(minNode, "pcp.min-lifetime", string.Create(CultureInfo.InvariantCulture, $"{min} s is above pcp.max-lifetime ({max} s)"));
            }
            bool allPorts = Boolean(m.Get("all-ports"), "pcp.all-ports", d.AllPorts);
            if (allPorts && allocation == PortAllocation.Dynamic)
            {
                // A subscriber on a shared address with ports allocated per session owns no ports to open.
                Error(m.Get("all-ports")!, "pcp.all-ports",
                    "true needs nat.allocation port-block or deterministic: with dynamic allocation a subscriber shares its address "
                    + "and gets ports one session at a time, so it owns no ports an all-ports mapping could open");
            }
            return new PcpSettings
            {
                AllPorts = allPorts,
                Enabled = Boolean(m.Get("enabled"), "pcp.enabled", d.Enabled),
                MaxLifetime = max,
                MinLifetime = Math.Min(min, max),
                MappingsPerSubscriber = (int)Integer(m.Get("mappings-per-subscriber"), "pcp.mappings-per-subscriber", d.MappingsPerSubscriber, 1, 65535, "mappings"),
                AllowedPorts = PcpPorts(m.Get("allowed-ports"), d.AllowedPorts),
                ThirdParty = Boolean(m.Get("third-party"), "pcp.third-party", d.ThirdParty),
                RequestsPerSecond = (int)Integer(m.Get("requests-per-second"), "pcp.requests-per-second", d.RequestsPerSecond, 1, 100_000, "requests"),
            };
        }

        private PortRange PcpPorts(YNode? node, PortRange defaults)
        {
            const string path = "pcp.allowed-ports";
            if (Text(node, path) is not { } t)
            {
                return defaults;
            }
            int dash = t.IndexOf('-', StringComparison.Ordinal);
            ReadOnlySpan<char> lowText = dash > 0 ? t.AsSpan(0, dash).Trim() : t.AsSpan().Trim();
            ReadOnlySpan<char> highText = dash > 0 ? t.AsSpan(dash + 1).Trim() : lowText;
            if (int.TryParse(lowText, NumberStyles.None, CultureInfo.InvariantCulture, out int low)
                && int.TryParse(highText, NumberStyles.None, CultureInfo.InvariantCulture, out int high)
                && low >= 1 && low <= high && high <= 65535)
            {
                return new PortRange((ushort)low, (ushort)high);
            }
            Error(node!, path, $"'{t}' is not a port range (expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535)");
            return defaults;
        }
    }
}
