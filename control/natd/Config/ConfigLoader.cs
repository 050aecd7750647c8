using System.Globalization;
using System.Text;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using YamlDotNet.Core;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Config;

/// <summary>
/// Loads natd.yaml into a validated <see cref="NatdConfig"/>. Every key is optional; the defaults
/// are the built-in lab (see <see cref="Describe"/>). Validation collects every error with its
/// file, line, column and key path before rejecting the file whole.
/// </summary>
public static partial class ConfigLoader
{
    /// <summary>Linux IFNAMSIZ minus the terminating NUL.</summary>
    internal const int MaxInterfaceNameLength = 15;

    internal const long MaxTimeoutSeconds = int.MaxValue;
    internal const int MaxSessions = 100_000_000;
    internal const int MaxNeighbours = 16_777_216;
    internal const int MaxBatch = 1024;

    internal static readonly string[] LogLevels = ["trace", "debug", "information", "warning", "error", "critical", "none"];

    private static readonly string[] TopKeys = ["interfaces", "nat", "timeouts", "limits", "dataplane", "control", "log", "rules", "forwards", "protocol-forwards", "algs", "triggers", "fragments", "pcp"];
    private static readonly string[] InterfacesKeys = ["inside", "outside"];
    private static readonly string[] InterfaceKeys = ["name", "address", "networks", "gateway", "mac", "neighbours", "driver", "mtu"];
    private static readonly string[] OutsideInterfaceKeys = [.. InterfaceKeys, "martian-filter", "allowed-sources"];
    private static readonly string[] MartianFilterWords = ["strict", "off"];

    /// <summary>The ranges the strict martian filter drops from outside, and the only ones allowed-sources may name.</summary>
    internal static readonly string[] DriverWords = ["auto", "af_xdp", "af_packet"];
    internal const int MaxWorkers = 64;

    /// <summary>Bounds of interfaces.*.mtu: IPv4's minimum (RFC 791) to the largest datagram a frame slot holds.</summary>
    internal const int MinMtu = 68;

    /// <summary>Bounds of nat.mss-clamp, bytes: RFC 9293's default MSS to the largest IPv4 datagram less 40.</summary>
    internal const int MinMssClamp = 536, MaxMssClamp = 65495;

    /// <summary>Bounds of dataplane.xdp-fill-ring: a fill ring of at most 16384 frames (the largest ring natd maps).</summary>
    internal const int MinXdpFillRing = 64, MaxXdpFillRing = 16384;
    private static readonly string[] NatKeys = ["pool", "ports", "mapping", "filtering", "subscriber-prefix", "allocation", "port-block", "deterministic", "pairing", "port-reuse-delay", "pool-threshold", "mss-clamp", "drain"];
    private static readonly string[] TimeoutKeys = ["tcp-established", "tcp-transitory", "udp", "icmp", "udp-ports"];
    private static readonly string[] LimitsKeys = ["sessions", "neighbours", "per-subscriber"];
    private static readonly string[] DataplaneKeys = ["batch", "verify-checksums", "workers", "xdp-fill-ring"];
    private static readonly string[] ControlKeys = ["listen"];
    private static readonly string[] LogKeys = ["level", "events"];

    private static readonly string[] MappingWords = ["endpoint-independent", "address-and-port-dependent"];
    private static readonly string[] FilteringWords = ["address-and-port-dependent", "address-dependent", "endpoint-independent"];

    /// <summary>The built-in lab configuration, identical to parsing an empty file.</summary>
    public static NatdConfig Default() => Parse("", "(built-in)");

    /// <summary>
    /// Largest configuration accepted, in bytes (1 MiB; natd.yaml is a few KiB). Bounds the memory and
    /// parse time a reload can cost the running daemon.
    /// </summary>
    internal const int MaxFileBytes = 1 << 20;

    /// <summary>Reads and validates the YAML file at <paramref name="path"/>.</summary>
    /// <param name="path">File path; messages name it as given.</param>
    /// <returns>The configuration, with <see cref="NatdConfig.SourcePath"/> set to the full path.</returns>
    /// <exception cref="ConfigException">
    /// The file cannot be read, is larger than <see cref="MaxFileBytes"/>, is not valid YAML, nests
    /// deeper than <see cref="YamlTreeReader.MaxDepth"/>, or fails validation.
    /// </exception>
    public static NatdConfig LoadFile(string path)
    {
        string text;
        int length;
        try
        {
            // Never more than the limit plus one byte in memory, whatever the file holds.
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            var bytes = new byte[MaxFileBytes + 1];
            length = file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            using var reader = new StreamReader(new MemoryStream(bytes, 0, length), Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
            text = reader.ReadToEnd();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ConfigException([new ConfigDiagnostic(path, 0, 0, "", $"cannot read the configuration file: {ex.Message}")]);
        }
        if (length > MaxFileBytes)
        {
            throw new ConfigException([TooLarge(path, text)]);
        }
        return Parse(text, path) with { SourcePath = Path.GetFullPath(path) };
    }

    /// <summary>Validates YAML text.</summary>
    /// <param name="yamlText">The document; empty means all defaults.</param>
    /// <param name="sourceName">Name used in messages, e.g. "natd.yaml".</param>
    /// <returns>The configuration; <see cref="NatdConfig.SourcePath"/> is null.</returns>
    /// <exception cref="ConfigException">Not valid YAML or fails validation; carries every error found.</exception>
    public static NatdConfig Parse(string yamlText, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(yamlText);
        ArgumentNullException.ThrowIfNull(sourceName);
        if (yamlText.Length > MaxFileBytes || Encoding.UTF8.GetByteCount(yamlText) > MaxFileBytes)
        {
            throw new ConfigException([TooLarge(sourceName, yamlText)]);
        }
        var v = new Validator(sourceName);
        YNode? root;
        Func<Mark>? lastMark = null;
        try
        {
            root = YamlTreeReader.Read(yamlText, v.Error, out lastMark);
        }
        catch (YamlNestingException ex)
        {
            // Alone: the tree was never built, so nothing else is known about the file.
            throw new ConfigException([new ConfigDiagnostic(sourceName, ex.Start.Line, ex.Start.Column, ex.Path, ex.Message)]);
        }
        catch (YamlException ex)
        {
            v.Error(ex.Start, "", $"not valid YAML: {StripMarks(ex.Message)}");
            throw new ConfigException(v.Errors);
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner throws this (without a position) on e.g. an unclosed '[' before a new block key.
            v.Error(lastMark?.Invoke() ?? Mark.Empty, "", "not valid YAML: the document cannot be parsed past this point (an unclosed '[', '{' or quote?)");
            throw new ConfigException(v.Errors);
        }
        NatdConfig config = v.Build(root);
        if (v.Errors.Count > 0)
        {
            throw new ConfigException(v.Errors);
        }
        return config with { Warnings = v.Warnings };
    }

    /// <summary>
    /// The key reference (<c>natd config describe</c>): every key with its default and accepted
    /// values, as a commented YAML document that itself parses to <see cref="Default"/> (keys whose
    /// default is "none" appear as commented examples).
    /// </summary>
    public static string Describe() => """
        # natd.yaml: every key is optional; the values shown are the defaults (the built-in lab),
        # commented lines are examples of keys whose default is "none".
        interfaces:
          inside:
            name: natin                # interface name, 1..15 characters (IFNAMSIZ)
            address: 10.0.0.1/24       # natd's own address and on-link prefix (a.b.c.d/len)
            networks: [10.0.0.0/24]    # subscriber networks; default: the prefix of address; never empty
            driver: auto               # auto (AF_XDP where it works, else AF_PACKET), af_xdp, af_packet
            # gateway: 10.0.0.254      # next hop for inside networks not on-link; default: none
            # mac: 02:00:00:00:00:01   # source MAC override; default: the port's own
            # neighbours: { 10.0.0.2: 02:00:00:00:00:02 }   # static ARP entries; default: none
            # mtu: 1500                # largest datagram natd sends here, 68..2030 bytes; default: the link's MTU;
                                       # larger ones are fragmented, or answered with fragmentation-needed (DF)
          outside:
            name: natout
            address: 198.51.100.1/24
            gateway: 198.51.100.254    # default next hop; must be on-link; default: 198.51.100.254 when
                                       # address is the default, otherwise none
            networks: [0.0.0.0/0]      # destinations reached through this side
            driver: auto
            martian-filter: strict     # or off: accept RFC 1918, RFC 6598 and link-local sources from outside
            # allowed-sources: [192.168.0.0/16]   # private sources accepted from outside (labs, private upstreams);
                                       # the on-link prefix of address needs no entry; default: none
            # mac, neighbours, mtu: as for inside
        nat:
          pool: [198.51.100.1]         # external addresses, prefixes or ranges (a.b.c.d-a.b.c.e); default: the
                                       # outside address; never empty
          ports: 1024-65535            # external port / ICMP id range LOW-HIGH, 1 <= LOW <= HIGH <= 65535
          mapping: endpoint-independent            # or address-and-port-dependent (RFC 4787 section 4.1)
          filtering: address-and-port-dependent    # or address-dependent, endpoint-independent (RFC 4787 section 5)
          subscriber-prefix: 32        # a subscriber is an inside /32, or a prefix of this length, 1..32
          allocation: dynamic          # dynamic (a random port per mapping), port-block (RFC 6888 section 5), deterministic
          port-block: { size: 512, per-subscriber: 8, interim-log: 0 }   # ports a block (16..32768), blocks a
                                       # subscriber (1..1024), seconds between interim records (0: none)
          pairing: strict              # paired address full: strict refuses, spill takes another address
          port-reuse-delay: 120        # seconds a released port or emptied block rests, 0..3600
          pool-threshold: 90           # percent of an address's ports (blocks) in use that logs pool-threshold; 0: off
          # drain: [198.51.100.7]      # pool addresses (as in pool) taken out of service: no new pairing goes to them;
                                       # a subscriber paired there moves at its next new flow, its live sessions stay
                                       # until they end; never the whole pool; not with deterministic; default: none
          mss-clamp: off               # TCP SYNs' MSS option lowered to at most this (536..65495 bytes), or auto:
                                       # the smaller MTU less 40 (RFC 6691); for paths that filter ICMP
          # deterministic: { inside: [10.64.0.0/16], ports: 0 }   # with allocation: deterministic (RFC 7422):
                                       # the subscribers' prefixes and ports each (0: derived; at least 64)
        timeouts:                      # idle timeouts in seconds, 1..2147483647
          tcp-established: 7440        # RFC 5382 REQ-5: at least 7440 (warning below)
          tcp-transitory: 240          # RFC 5382 REQ-5: 240 (warning below)
          udp: 300                     # RFC 4787 REQ-5: never below 120 (warning below), 300 recommended
          icmp: 60                     # RFC 5508 REQ-1: 60 (warning below)
          # udp-ports: { 53: 30 }      # RFC 4787 REQ-5a: UDP sessions whose server port (the remote's, else the
                                       # external one) is this well-known port (1..1023) idle out after these
                                       # seconds instead of udp; at most 4 distinct values; default: none
        limits:
          sessions: 262144             # session table capacity, 1..100000000
          neighbours: 4096             # learned ARP entries per side and poller, 1..16777216; as many may be
                                       # resolving at once; full => the least recently used is evicted
          per-subscriber: { sessions: 0, ports: 0, new-sessions-per-second: 0 }   # RFC 6888 REQ-3, REQ-4; 0: unlimited
        fragments:                     # IPv4 fragments of TCP, UDP and ICMP (RFC 4787 REQ-14), per worker
          max-datagrams: 1024          # datagrams followed at once, 1..1048576
          max-per-datagram: 64         # fragments of one datagram, 2..1024
          timeout: 2                   # seconds a datagram's state lives from its first fragment seen, 1..60
        pcp:                           # Port Control Protocol server (RFC 6887) and NAT-PMP (RFC 6886)
          enabled: false               # answer UDP 5351 on the inside address
          max-lifetime: 86400          # seconds; a longer request is cut to it
          min-lifetime: 120            # seconds; a shorter create or refresh is raised to it
          mappings-per-subscriber: 32  # one more is USER_EX_QUOTA (NAT-PMP: out of resources)
          allowed-ports: 1024-65535    # external ports a mapping may get
          third-party: false           # accept the THIRD_PARTY option (NOT_AUTHORIZED otherwise)
          requests-per-second: 20      # per subscriber (token bucket)
          all-ports: false             # MAP of all ports / all protocols; needs port-block or deterministic
        dataplane:
          batch: 64                    # frames per receive poll, 1..1024
          verify-checksums: true       # verify TCP/UDP/ICMP checksums of received packets (true/false)
          # workers: 2                 # pollers, 1..64; default: one per available core
          # xdp-fill-ring: 4096        # AF_XDP frames each socket keeps ready to receive into, 64..16384;
                                       # default 4096 when the workers take every core, else 1024 (2048
                                       # without a shared UMEM). Deeper rides out longer waits for a core
                                       # but keeps fewer frames cached
        control:
          listen: 127.0.0.1:9180       # control API host:port; host an IP literal, [IPv6] or localhost
        log:
          level: information           # trace, debug, information, warning, error, critical, none
          # events:                    # NAT event log (RFC 6888 section 4); default: none (nothing logged)
          #   queue: 65536             # events per poller ring, 2..16777216; full => dropped and counted
          #   file: { path: /var/log/natd/events.jsonl, max-bytes: 104857600, keep: 5 }   # JSON lines, rotated
          #   syslog: { server: 127.0.0.1:514, facility: local0, hostname: natd }          # RFC 5424 over UDP
          #   ipfix: { collector: 127.0.0.1:4739, domain: 1, template-interval: 60 }       # RFC 7011/8158 over UDP
        algs:                          # application-level gateways (helper actors), like insmod ip_masq_ftp ports=21,2121
          ftp: { enabled: true, ports: [21] }       # PORT/EPRT rewritten, PASV/EPSV data related; a bare true/false also works
          irc: { enabled: false, ports: [6667] }    # DCC SEND/CHAT offers rewritten; off: an offer opens a port to any remote
          tftp: { enabled: true, ports: [69] }      # the server's reply from its new port reaches the client
          pptp: { enabled: true, ports: [1723] }    # Call IDs masqueraded, GRE v1 translated by Call ID
          ipsec:                       # ESP and ISAKMP masquerading (VPN Masquerade HOWTO section 6)
            enabled: true
            init-timeout: 10           # seconds an outbound SPI waits for its inbound SPI, 1..300
            init-retries: 30           # packets of another host dropped while a remote is serialised, 0..10000
            parallel: false            # several inside hosts' ESP to one remote host at once
            esp-timeout: 1800          # idle timeout of an ESP association, seconds
            isakmp-timeout: 28800      # idle timeout of ISAKMP entries, seconds (>= the IKE rekey interval)
          expectation-timeout: 60      # seconds a pinhole waits for its related connection, 1..3600
        # triggers:                    # port triggers (ipautofw); default: none
        #   - preset: realaudio        # realaudio, quake, cuseeme, vdolive
        #   - { name: game, protocol: tcp, ports: 7070, open: { protocol: udp, ports: 6970-7170 } }
        # rules:                       # default: masquerade what comes from the inside networks
        #   policy: deny               # when no rule matches: deny, reject, accept, masquerade
        #   list:                      # ordered, ipchains-like; the first match decides
        #     - { name: no-smtp, source: [10.0.0.0/24], destination: [0.0.0.0/0], protocol: tcp, source-ports: [1024-65535],
        #         destination-ports: [25], in: inside, out: outside, action: reject, log: true }
        # forwards:                    # inbound port forwards (ipportfw), TCP or UDP; default: none
        #   - { protocol: tcp, external: 198.51.100.1:8080, backends: [10.0.0.2:8000], balance: round-robin }
        # protocol-forwards:           # inbound protocols without ports (ipfwd --masq); default: none
        #   - { protocol: gre, external: 198.51.100.1, to: 10.0.0.2 }

        """;

    /// <summary>
    /// The size error, placed at the first character whose UTF-8 encoding passes
    /// <see cref="MaxFileBytes"/> (or at the end of <paramref name="text"/> when a file in another
    /// encoding is larger than the limit only in its own bytes).
    /// </summary>
    private static ConfigDiagnostic TooLarge(string source, string text)
    {
        long bytes = 0, line = 1, column = 1;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            bytes += c < 0x80 ? 1 : c < 0x800 || char.IsSurrogate(c) ? 2 : 3;
            if (bytes > MaxFileBytes)
            {
                break;
            }
            if (c == '\n')
            {
                line++;
                column = 1;
            }
            else
            {
                column++;
            }
        }
        return new ConfigDiagnostic(source, line, column, "",
            $"the file is larger than {MaxFileBytes} bytes (1 MiB), the limit for a configuration; the limit falls here");
    }

    /// <summary>YamlDotNet prefixes "(Line: 3, Col: 5, Idx: ...) - (...): "; our own prefix already says where.</summary>
    private static string StripMarks(string message)
    {
        int i = message.IndexOf("): ", StringComparison.Ordinal);
        return message.StartsWith("(Line:", StringComparison.Ordinal) && i >= 0 ? message[(i + 3)..] : message;
    }

    /// <summary>
    /// The defaults of the settings natd.yaml may leave out are NatSettings' and NatdConfig's
    /// initialisers, read from these instances, so each default is written once (the built-in
    /// config text above documents them; a test checks it says the same).
    /// </summary>
    internal static readonly NatSettings Defaults = new() { Inside = null!, Outside = null!, Pool = [] };

    /// <inheritdoc cref="NatdConfig.BatchSize"/>
    internal static readonly int DefaultBatch = new NatdConfig { Nat = Defaults, ControlListen = "", LogLevel = "" }.BatchSize;

    /// <summary>Walks the tree once, building the settings and collecting diagnostics.</summary>
    private sealed partial class Validator(string source)
    {
        public List<ConfigDiagnostic> Errors { get; } = [];
        public List<ConfigDiagnostic> Warnings { get; } = [];

        public void Error(Mark at, string path, string message)
            => Errors.Add(new ConfigDiagnostic(source, at.Line, at.Column, path, message));

        private void Error(YNode at, string path, string message) => Error(at.Start, path, message);

        private void Warn(YNode? at, string path, string message)
            => Warnings.Add(new ConfigDiagnostic(source, at?.Start.Line ?? 0, at?.Start.Column ?? 0, path, message));

        public NatdConfig Build(YNode? root)
        {
            YMapping? top = Mapping(root, "");
            Keys(top, "", TopKeys);

            YMapping? interfaces = Mapping(top?.Get("interfaces"), "interfaces");
            Keys(interfaces, "interfaces", InterfacesKeys);
            var inside = Interface(interfaces?.Get("inside"), "interfaces.inside", Sides.Inside);
            var outside = Interface(interfaces?.Get("outside"), "interfaces.outside", Sides.Outside);
            YMapping? outsideNode = interfaces?.Get("outside") as YMapping;
            var martianFilter = (MartianFilter)Word(outsideNode?.Get("martian-filter"), "interfaces.outside.martian-filter", MartianFilterWords, 0);
            var allowedSources = AllowedSources(outsideNode?.Get("allowed-sources"), inside.Settings);
            if (inside.Settings.Name == outside.Settings.Name)
            {
                YNode? at = outside.NameNode ?? inside.NameNode;
                string path = outside.NameNode is not null ? "interfaces.outside.name" : "interfaces.inside.name";
                Error(at!, path, $"inside and outside are both '{outside.Settings.Name}'; natd needs two distinct interfaces");
            }

            YMapping? nat = Mapping(top?.Get("nat"), "nat");
            Keys(nat, "nat", NatKeys);
            var pool = Pool(nat?.Get("pool"), outside.Settings.Address);
            (ushort low, ushort high) = Ports(nat?.Get("ports"));
            var mapping = Word(nat?.Get("mapping"), "nat.mapping", MappingWords, 0) == 0
                ? MappingBehaviour.EndpointIndependent : MappingBehaviour.AddressAndPortDependent;
            var filtering = (FilteringBehaviour)Word(nat?.Get("filtering"), "nat.filtering", FilteringWords, 0);
            int mssClamp = MssClamp(nat?.Get("mss-clamp"));

            YMapping? timeouts = Mapping(top?.Get("timeouts"), "timeouts");
            Keys(timeouts, "timeouts", TimeoutKeys);
            int tcpEst = Timeout(timeouts, "tcp-established", Defaults.Timeouts.TcpEstablished, "RFC 5382 REQ-5 requires at least 7440 s (2 h 4 min) for established TCP");
            int tcpTrans = Timeout(timeouts, "tcp-transitory", Defaults.Timeouts.TcpTransitory, "RFC 5382 REQ-5 recommends 240 s (4 min) for transitory TCP");
            int udp = Timeout(timeouts, "udp", Defaults.Timeouts.Udp, "RFC 4787 REQ-5 forbids UDP timeouts below 120 s (300 s recommended)", 120);
            int icmp = Timeout(timeouts, "icmp", Defaults.Timeouts.Icmp, "RFC 5508 REQ-1 requires at least 60 s for ICMP queries");
            UdpPortTimeouts udpPorts = UdpPorts(timeouts?.Get("udp-ports"));

            YMapping? limits = Mapping(top?.Get("limits"), "limits");
            Keys(limits, "limits", LimitsKeys);
            int sessions = (int)Integer(limits?.Get("sessions"), "limits.sessions", Defaults.MaxSessions, 1, MaxSessions, "sessions");
            int neighbours = (int)Integer(limits?.Get("neighbours"), "limits.neighbours", Defaults.MaxNeighbours, 1, MaxNeighbours, "neighbours");

            YMapping? dataplane = Mapping(top?.Get("dataplane"), "dataplane");
            Keys(dataplane, "dataplane", DataplaneKeys);
            int batch = (int)Integer(dataplane?.Get("batch"), "dataplane.batch", DefaultBatch, 1, MaxBatch, "frames");
            bool verify = Boolean(dataplane?.Get("verify-checksums"), "dataplane.verify-checksums", Defaults.VerifyL4Checksums);
            int workers = (int)Integer(dataplane?.Get("workers"), "dataplane.workers", Math.Clamp(Environment.ProcessorCount, 1, MaxWorkers), 1, MaxWorkers, "pollers");
            int? xdpFill = XdpFillRing(dataplane?.Get("xdp-fill-ring"));

            YMapping? control = Mapping(top?.Get("control"), "control");
            Keys(control, "control", ControlKeys);
            string listen = Listen(control?.Get("listen"));

            YMapping? log = Mapping(top?.Get("log"), "log");
            Keys(log, "log", LogKeys);
            string level = LogLevels[Word(log?.Get("level"), "log.level", LogLevels, 2)];

            var settings = new NatSettings
            {
                Inside = inside.Settings,
                Outside = outside.Settings,
                Pool = pool,
                PortMin = low,
                PortMax = high,
                Mapping = mapping,
                Filtering = filtering,
                Timeouts = new Timeouts(tcpEst, tcpTrans, udp, icmp) { UdpPorts = udpPorts },
                MaxSessions = sessions,
                MaxNeighbours = neighbours,
                VerifyL4Checksums = verify,
                MartianFilter = martianFilter,
                MssClamp = mssClamp,
            };
            if (allowedSources is not null)
            {
                settings = settings with { AllowedOutsideSources = allowedSources };
            }
            settings = Cgnat(nat, limits, settings);
            settings = settings with { Fragments = Fragments(top?.Get("fragments")), Pcp = Pcp(top?.Get("pcp"), settings.Cgnat.Allocation) };
            settings = RulesAndForwards(top, settings);
            settings = Algs(top, settings);
            return new NatdConfig
            {
                Nat = settings,
                ControlListen = listen,
                BatchSize = batch,
                Workers = workers,
                XdpFillRing = xdpFill,
                InsideDriver = inside.Driver,
                OutsideDriver = outside.Driver,
                LogLevel = level,
                Events = EventLog(log?.Get("events")),
            };
        }

        private enum Sides { Inside, Outside }

        private readonly record struct InterfaceResult(InterfaceSettings Settings, YNode? NameNode, string Driver);

        private InterfaceResult Interface(YNode? node, string path, Sides side)
        {
            YMapping? m = Mapping(node, path);
            bool inside = side == Sides.Inside;
            Keys(m, path, inside ? InterfaceKeys : OutsideInterfaceKeys);

            YNode? nameNode = m?.Get("name");
            string name = inside ? "natin" : "natout";
            if (Text(nameNode, path + ".name") is { } n)
            {
                if (n.Length == 0 || n.Length > MaxInterfaceNameLength || n is "." or ".."
                    || n.AsSpan().IndexOfAny("/: \t") >= 0)
                {
                    Error(nameNode!, path + ".name",
                        $"'{n}' is not an interface name (expected 1 to {MaxInterfaceNameLength} characters, no '/', ':' or spaces)");
                }
                else
                {
                    name = n;
                }
            }

            var defaultAddress = inside ? "10.0.0.1/24" : "198.51.100.1/24";
            YNode? addressNode = m?.Get("address");
            Ipv4Prefix address = Ipv4Prefix.Parse(defaultAddress);
            if (Text(addressNode, path + ".address") is { } a)
            {
                if (InterfaceAddress(a) is { } p)
                {
                    address = p;
                }
                else
                {
                    Error(addressNode!, path + ".address",
                        $"'{a}' is not an interface address (expected a.b.c.d/len with len 1..32 and a host part that is neither all zeros nor all ones)");
                }
            }
            var onLink = new Ipv4Prefix(address.Address & address.Mask, address.Length);

            IReadOnlyList<Ipv4Prefix> networks = NetworkList(m?.Get("networks"), path + ".networks")
                ?? [inside ? onLink : new Ipv4Prefix(0, 0)];

            uint gateway = 0;
            YNode? gatewayNode = m?.Get("gateway");
            if (gatewayNode is null)
            {
                if (!inside && addressNode is null)
                {
                    gateway = Ipv4.Parse("198.51.100.254");
                }
            }
            else if (Text(gatewayNode, path + ".gateway") is { } g)
            {
                if (!Ipv4.TryParse(g, out gateway))
                {
                    Error(gatewayNode, path + ".gateway", $"'{g}' is not an IPv4 address (expected a.b.c.d)");
                }
                else if (!address.Contains(gateway) || gateway == address.Address)
                {
                    Error(gatewayNode, path + ".gateway",
                        $"gateway {g} is not a neighbour on {path}.address {address} (it must be on-link and not natd's own address)");
                    gateway = 0;
                }
            }

            MacAddress? mac = null;
            YNode? macNode = m?.Get("mac");
            if (Text(macNode, path + ".mac") is { } macText)
            {
                if (MacAddress.TryParse(macText, out var parsed) && !parsed.IsZero && (parsed.Value & 0x0100_0000_0000UL) == 0)
                {
                    mac = parsed;
                }
                else
                {
                    Error(macNode!, path + ".mac", $"'{macText}' is not a unicast MAC address (expected aa:bb:cc:dd:ee:ff, not zero, multicast bit clear)");
                }
            }

            var neighbours = new List<KeyValuePair<uint, MacAddress>>();
            YMapping? nm = Mapping(m?.Get("neighbours"), path + ".neighbours");
            if (nm is not null)
            {
                foreach (var (keyNode, valueNode) in nm.Entries)
                {
                    string entryPath = $"{path}.neighbours[{keyNode.Value}]";
                    bool ok = true;
                    if (!Ipv4.TryParse(keyNode.Value, out uint ip))
                    {
                        Error(keyNode, entryPath, $"'{keyNode.Value}' is not an IPv4 address (neighbour keys are a.b.c.d)");
                        ok = false;
                    }
                    if (Text(valueNode, entryPath) is not { } v)
                    {
                        continue;
                    }
                    if (!MacAddress.TryParse(v, out var nmac) || nmac.IsZero || (nmac.Value & 0x0100_0000_0000UL) != 0)
                    {
                        Error(valueNode, entryPath, $"'{v}' is not a unicast MAC address (expected aa:bb:cc:dd:ee:ff)");
                        ok = false;
                    }
                    if (ok)
                    {
                        neighbours.Add(new(ip, nmac));
                    }
                }
            }

            string driver = DriverWords[Word(m?.Get("driver"), path + ".driver", DriverWords, 0)];
            int mtu = (int)Integer(m?.Get("mtu"), path + ".mtu", 0, MinMtu, Natd.Dataplane.Io.LinkSettings.LargestMtu, "bytes");
            return new InterfaceResult(new InterfaceSettings(name, address, networks, gateway, mac, neighbours) { Mtu = mtu }, nameNode, driver);
        }

        private static Ipv4Prefix? InterfaceAddress(string text)
        {
            if (!text.Contains('/') || !Ipv4Prefix.TryParse(text, out var p) || p.Length == 0)
            {
                return null;
            }
            if (p.Length <= 30)
            {
                uint host = Ipv4.ToHostOrder(p.Address & ~p.Mask);
                uint hostMask = uint.MaxValue >> p.Length;
                if (host == 0 || host == hostMask)
                {
                    return null;
                }
            }
            return p;
        }

        /// <summary>
        /// A list of networks (a.b.c.d/len, no host bits). <paramref name="atLeastOne"/> refuses an
        /// empty list; <paramref name="refuse"/> gives the message for a well-formed network that is
        /// still not acceptable here (null: accepted). Null when the key is absent or not a list.
        /// </summary>
        private List<Ipv4Prefix>? NetworkList(YNode? node, string path, bool atLeastOne = true, Func<Ipv4Prefix, string, string?>? refuse = null)
        {
            YSequence? seq = Sequence(node, path);
            if (seq is null)
            {
                return null;
            }
            if (atLeastOne && seq.Items.Count == 0)
            {
                Error(node!, path, "must list at least one network (a.b.c.d/len)");
                return null;
            }
            var list = new List<Ipv4Prefix>(seq.Items.Count);
            for (int i = 0; i < seq.Items.Count; i++)
            {
                string itemPath = string.Create(CultureInfo.InvariantCulture, $"{path}[{i}]");
                YNode item = seq.Items[i];
                if (Text(item, itemPath) is not { } t)
                {
                    continue;
                }
                if (!t.Contains('/') || !Ipv4Prefix.TryParse(t, out var p))
                {
                    Error(item, itemPath, $"'{t}' is not a network (expected a.b.c.d/len with len 0..32)");
                }
                else if ((p.Address & ~p.Mask) != 0)
                {
                    Error(item, itemPath, $"'{t}' has host bits set (did you mean {new Ipv4Prefix(p.Address & p.Mask, p.Length)}?)");
                }
                else if (refuse?.Invoke(p, t) is { } why)
                {
                    Error(item, itemPath, why);
                }
                else
                {
                    list.Add(p);
                }
            }
            return list;
        }

        /// <summary>
        /// interfaces.outside.allowed-sources: networks inside the private and special-use ranges the
        /// strict filter drops, none lying within the inside (whose sources from outside are spoofed
        /// whatever this says: a prefix that only overlaps the inside allows the rest). Null when absent.
        /// </summary>
        private List<Ipv4Prefix>? AllowedSources(YNode? node, InterfaceSettings inside)
            => NetworkList(node, "interfaces.outside.allowed-sources", atLeastOne: false, (p, t) =>
                !PrivateSources.Ranges.Any(r => r.Length <= p.Length && r.Contains(p.Address))
                    ? $"{t} is not within a range the martian filter drops ({string.Join(", ", PrivateSources.Ranges)}); other sources need no allowance"
                    : Containing(p, inside) is { } clash
                        ? $"{t} lies within the inside network {clash}; inside sources arriving from outside are spoofed and always dropped"
                        : null);

        private static Ipv4Prefix? Containing(Ipv4Prefix p, InterfaceSettings inside)
        {
            var onLink = new Ipv4Prefix(inside.Address.Address & inside.Address.Mask, inside.Address.Length);
            foreach (Ipv4Prefix n in inside.Networks.Prepend(onLink))
            {
                if (n.Length <= p.Length && n.Contains(p.Address))
                {
                    return n;
                }
            }
            return null;
        }

        private List<uint> Pool(YNode? node, Ipv4Prefix outside)
        {
            const string path = "nat.pool";
            YSequence? seq = Sequence(node, path);
            if (seq is null)
            {
                return [outside.Address];
            }
            if (seq.Items.Count == 0)
            {
                Error(node!, path, "the pool must hold at least one external address");
                return [outside.Address];
            }
            var pool = new List<uint>(seq.Items.Count);
            var seen = new HashSet<uint>();
            for (int i = 0; i < seq.Items.Count; i++)
            {
                string itemPath = string.Create(CultureInfo.InvariantCulture, $"{path}[{i}]");
                YNode item = seq.Items[i];
                if (Text(item, itemPath) is not { } t)
                {
                    continue;
                }
                if (PoolItem(item, itemPath, t) is not { } addresses)
                {
                    continue;
                }
                if (pool.Count + addresses.Count > MaxPoolAddresses)
                {
                    Error(item, itemPath, string.Create(CultureInfo.InvariantCulture,
                        $"the pool would hold {pool.Count + addresses.Count} addresses; it takes at most {MaxPoolAddresses}"));
                    break;
                }
                bool outsideWarned = false;
                foreach (uint a in addresses)
                {
                    if (!seen.Add(a))
                    {
                        Error(item, itemPath, $"{Ipv4.Format(a)} is listed twice in the pool");
                        break;
                    }
                    if (!outside.Contains(a) && !outsideWarned)
                    {
                        outsideWarned = true;
                        Warn(item, itemPath,
                            $"pool address {Ipv4.Format(a)} is outside the outside interface's prefix {new Ipv4Prefix(outside.Address & outside.Mask, outside.Length)}; the upstream router must route it to natd");
                    }
                    pool.Add(a);
                }
            }
            return pool;
        }

        private (ushort Low, ushort High) Ports(YNode? node)
        {
            const string path = "nat.ports";
            if (Text(node, path) is not { } t)
            {
                return (Defaults.PortMin, Defaults.PortMax);
            }
            int dash = t.IndexOf('-', StringComparison.Ordinal);
            if (dash > 0
                && int.TryParse(t.AsSpan(0, dash).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int low)
                && int.TryParse(t.AsSpan(dash + 1).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int high)
                && low >= 1 && low <= high && high <= 65535)
            {
                return ((ushort)low, (ushort)high);
            }
            Error(node!, path, $"'{t}' is not a port range (expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535)");
            return (Defaults.PortMin, Defaults.PortMax);
        }

        private int Timeout(YMapping? m, string key, int defaultSeconds, string rfc, int? warnBelow = null)
        {
            string path = "timeouts." + key;
            YNode? node = m?.Get(key);
            int value = (int)Integer(node, path, defaultSeconds, 1, MaxTimeoutSeconds, "seconds");
            if (value < (warnBelow ?? defaultSeconds))
            {
                Warn(node, path, string.Create(CultureInfo.InvariantCulture, $"{value} s is below the recommendation: {rfc}"));
            }
            return value;
        }

        /// <summary>timeouts.udp-ports: { PORT: SECONDS, ... }, well-known ports with a UDP timer of their own (RFC 4787 REQ-5a).</summary>
        private UdpPortTimeouts UdpPorts(YNode? node)
        {
            const string path = "timeouts.udp-ports";
            YMapping? m = Mapping(node, path);
            if (m is null)
            {
                return UdpPortTimeouts.None;
            }
            var entries = new List<KeyValuePair<int, int>>();
            bool ok = true;
            foreach (var (keyNode, valueNode) in m.Entries)
            {
                string entryPath = $"{path}[{keyNode.Value}]";
                if (!int.TryParse(keyNode.Value, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > UdpPortTimeouts.MaxPort)
                {
                    Error(keyNode, entryPath, $"'{keyNode.Value}' is not a well-known port (1..{UdpPortTimeouts.MaxPort}): RFC 4787 REQ-5a gives a UDP timer of its own to those only");
                    ok = false;
                    continue;
                }
                if (entries.Exists(e => e.Key == port))
                {
                    Error(keyNode, entryPath, $"port {port} is named twice");
                    ok = false;
                    continue;
                }
                if (valueNode is YScalar { IsNull: true })
                {
                    Error(valueNode, entryPath, "expected the port's timeout in seconds, 1..2147483647");
                    ok = false;
                    continue;
                }
                int seconds = (int)Integer(valueNode, entryPath, 0, 1, MaxTimeoutSeconds, "seconds");
                ok &= seconds >= 1;
                entries.Add(new(port, seconds));
            }
            if (!ok)
            {
                return UdpPortTimeouts.None;
            }
            if (UdpPortTimeouts.Create(entries, out string? why) is { } timers)
            {
                return timers;
            }
            Error(m, path, why!);
            return UdpPortTimeouts.None;
        }

        private string Listen(YNode? node)
        {
            const string path = "control.listen";
            if (Text(node, path) is not { } t)
            {
                return "127.0.0.1:9180";
            }
            if (ListenEndpoint.TryParse(t, out var ep) && ep.Port != 0)
            {
                return t;
            }
            Error(node!, path, $"'{t}' is not host:port (expected an IPv4 address, [IPv6 address] or localhost, then ':' and a port 1..65535, e.g. 127.0.0.1:9180)");
            return "127.0.0.1:9180";
        }

        private long Integer(YNode? node, string path, long defaultValue, long min, long max, string unit)
        {
            if (Text(node, path) is not { } t)
            {
                return defaultValue;
            }
            if (long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v) && v >= min && v <= max)
            {
                return v;
            }
            Error(node!, path, string.Create(CultureInfo.InvariantCulture,
                $"'{t}' is not a whole number of {unit} from {min} to {max}"));
            return defaultValue;
        }

        /// <summary>nat.mss-clamp: off (0), auto (<see cref="NatSettings.MssClampAuto"/>) or bytes, 536 (RFC 9293's default MSS) to 65495 (the largest IPv4 datagram less 40).</summary>
        private int MssClamp(YNode? node)
        {
            if (Text(node, "nat.mss-clamp") is not { } t || t == "off")
            {
                return 0;
            }
            if (t == "auto")
            {
                return NatSettings.MssClampAuto;
            }
            if (int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v is >= MinMssClamp and <= MaxMssClamp)
            {
                return v;
            }
            Error(node!, "nat.mss-clamp", string.Create(CultureInfo.InvariantCulture,
                $"'{t}' is not off, auto or a segment size of {MinMssClamp} to {MaxMssClamp} bytes"));
            return 0;
        }

        /// <summary>dataplane.xdp-fill-ring: null when absent (natd then picks the depth: PortFactory.XdpFillRing).</summary>
        private int? XdpFillRing(YNode? node)
        {
            if (node is null)
            {
                return null;
            }
            return (int)Integer(node, "dataplane.xdp-fill-ring", MinXdpFillRing, MinXdpFillRing, MaxXdpFillRing, "frames");
        }

        private bool Boolean(YNode? node, string path, bool defaultValue)
        {
            if (Text(node, path) is not { } t)
            {
                return defaultValue;
            }
            if (t is "true" or "True" or "TRUE")
            {
                return true;
            }
            if (t is "false" or "False" or "FALSE")
            {
                return false;
            }
            Error(node!, path, $"'{t}' is not a boolean (accepted: true, false)");
            return defaultValue;
        }

        /// <summary>Index of the accepted word, or <paramref name="defaultIndex"/> when absent or unknown.</summary>
        private int Word(YNode? node, string path, string[] accepted, int defaultIndex)
        {
            if (Text(node, path) is not { } t)
            {
                return defaultIndex;
            }
            int i = Array.IndexOf(accepted, t);
            if (i >= 0)
            {
                return i;
            }
            Error(node!, path, $"unknown value '{t}' (accepted: {string.Join(", ", accepted)})");
            return defaultIndex;
        }

        /// <summary>Scalar text; null when absent or when the node is not a scalar (an error is recorded for the latter, and for a key with no value).</summary>
        private string? Text(YNode? node, string path)
        {
            switch (node)
            {
                case null:
                    return null;
                case YScalar { IsNull: true }:
                    Error(node, path, "has no value (remove the key to use the default)");
                    return null;
                case YScalar s:
                    return s.Value;
                default:
                    Error(node, path, $"expected a single value, found {node.KindName}");
                    return null;
            }
        }

        /// <summary>The mapping; null when absent or wrong kind (error recorded); an empty mapping for a key with no value.</summary>
        private YMapping? Mapping(YNode? node, string path)
        {
            switch (node)
            {
                case null:
                    return null;
                case YMapping m:
                    return m;
                case YScalar { IsNull: true }:
                    return new YMapping(node.Start, []);
                default:
                    Error(node, path.Length == 0 ? "" : path,
                        $"expected a mapping (key: value lines), found {node.KindName}");
                    return null;
            }
        }

        /// <summary>The list; null when absent or wrong kind (error recorded); an empty list for a key with no value.</summary>
        private YSequence? Sequence(YNode? node, string path)
        {
            switch (node)
            {
                case null:
                    return null;
                case YSequence s:
                    return s;
                case YScalar { IsNull: true }:
                    return new YSequence(node.Start, []);
                default:
                    Error(node, path, $"expected a list ([a, b] or '- ' lines), found {node.KindName}");
                    return null;
            }
        }

        private void Keys(YMapping? m, string path, string[] accepted)
        {
            if (m is null)
            {
                return;
            }
            foreach (var (key, _) in m.Entries)
            {
                if (Array.IndexOf(accepted, key.Value) < 0)
                {
                    string keyPath = path.Length == 0 ? key.Value : $"{path}.{key.Value}";
                    Error(key, keyPath, $"unknown key '{key.Value}' (accepted here: {string.Join(", ", accepted)})");
                }
            }
        }
    }
}
