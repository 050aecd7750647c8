using System.Reflection;
using System.Xml.Linq;
using Assembly = System.Reflection.Assembly;
using ArchUnitNET.Loader;

namespace Natd.Tests.Architecture;

/// <summary>
/// The layering rules of natd (docs: README "Layout"): the dataplane's components form no namespace
/// cycle; the dataplane knows nothing of config files, HTTP, the CLI or the control programs; natd and
/// natctl share only the contracts assembly (natd never references natctl, natctl never the dataplane).
/// A component is the namespace one level below Natd.Dataplane (Natd.Dataplane.Alg.Ftp belongs to Alg);
/// component A depends on B when any type of A references any type of B (fields, signatures, bodies).
/// </summary>
public sealed class LayeringTests
{
    private const string DataplaneRoot = "Natd.Dataplane";

    private static readonly Assembly Dataplane = typeof(Natd.Dataplane.Nat.NatEngine).Assembly;

    private static readonly Lazy<ArchUnitNET.Domain.Architecture> DataplaneArchitecture =
        new(() => new ArchLoader().LoadAssemblies(Dataplane).Build());

    [Fact]
    public void Dataplane_components_form_no_namespace_cycle()
    {
        var graph = ComponentGraph();
        var cycles = Cycles(graph);
        Assert.True(cycles.Count == 0,
            "namespace cycles in the dataplane (each line one strongly connected set, with the references that close it):\n"
            + string.Join("\n", cycles.Select(c => "  " + string.Join(" <-> ", c) + "\n" + Witnesses(c))));
    }

    /// <summary>The cycle check itself catches a cycle: a two-component graph that references both ways.</summary>
    [Fact]
    public void Cycle_check_finds_a_cycle_and_accepts_a_chain()
    {
        var cyclic = new Dictionary<string, Dictionary<string, string>>
        {
            ["A"] = new() { ["B"] = "A.X -> B.Y" },
            ["B"] = new() { ["C"] = "B.Y -> C.Z" },
            ["C"] = new() { ["A"] = "C.Z -> A.X" },
            ["D"] = new() { ["A"] = "D -> A" },
        };
        var found = Cycles(cyclic);
        Assert.Single(found);
        Assert.Equal(["A", "B", "C"], found[0]);
        cyclic["C"].Clear();
        Assert.Empty(Cycles(cyclic));
    }

    [Theory]
    [InlineData("YamlDotNet")]
    [InlineData("Microsoft.AspNetCore")]
    [InlineData("Microsoft.Extensions.Hosting")]
    [InlineData("System.CommandLine")]
    [InlineData("natd")]
    [InlineData("natctl")]
    [InlineData("Natd.Contracts")]
    public void Dataplane_references_no_config_http_cli_or_control_assembly(string forbidden)
    {
        AssertNoReference(Dataplane, "dataplane/Dataplane.csproj", forbidden);
    }

    [Fact]
    public void Natd_does_not_reference_natctl()
    {
        AssertNoReference(typeof(Natd.Control.Api.ControlServer).Assembly, "control/natd/natd.csproj", "natctl");
    }

    [Theory]
    [InlineData("Natd.Dataplane")]
    [InlineData("natd")]
    [InlineData("YamlDotNet")]
    [InlineData("Microsoft.AspNetCore")]
    public void Natctl_references_neither_the_dataplane_nor_natd(string forbidden)
    {
        AssertNoReference(NatctlAssembly(), "control/natctl/natctl.csproj", forbidden);
    }

    /// <summary>
    /// Checks both what the compiled assembly references and what its project file asks for (a project
    /// or package reference that no code uses yet still puts the dependency on the build).
    /// </summary>
    private static void AssertNoReference(Assembly assembly, string projectFile, string forbidden)
    {
        var referenced = assembly.GetReferencedAssemblies()
            .Select(a => a.Name ?? "")
            .Where(n => Matches(n, forbidden))
            .ToList();
        Assert.True(referenced.Count == 0,
            $"{assembly.GetName().Name} references {string.Join(", ", referenced)} (forbidden: {forbidden})");

        var project = XDocument.Load(Path.Combine(RepositoryRoot(), projectFile));
        var asked = project.Descendants()
            .Where(e => e.Name.LocalName is "ProjectReference" or "PackageReference" or "FrameworkReference" or "Reference")
            .Select(e => (string?)e.Attribute("Include") ?? "")
            .Where(include => Matches(Path.GetFileNameWithoutExtension(include.Replace('\\', '/')), forbidden)
                              || Matches(include, forbidden))
            .ToList();
        Assert.True(asked.Count == 0, $"{projectFile} references {string.Join(", ", asked)} (forbidden: {forbidden})");
    }

    /// <summary>"natd" matches the assembly natd only; "Microsoft.AspNetCore" matches it and any Microsoft.AspNetCore.*.</summary>
    private static bool Matches(string name, string forbidden)
        => string.Equals(name, forbidden, StringComparison.OrdinalIgnoreCase)
           || name.StartsWith(forbidden + ".", StringComparison.OrdinalIgnoreCase) && forbidden.Contains('.', StringComparison.Ordinal)
           || forbidden == "Natd.Dataplane" && string.Equals(name, "Dataplane", StringComparison.OrdinalIgnoreCase);

    private static Assembly NatctlAssembly()
        => Assembly.LoadFrom(Path.Combine(AppContext.BaseDirectory, "natctl.dll"));

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Dataplane.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no Dataplane.sln above {AppContext.BaseDirectory}");
    }

    /// <summary>The component of a dataplane namespace ("Natd.Dataplane.Alg.Ftp" -> "Alg"), null outside the dataplane.</summary>
    private static string? Component(string? ns)
    {
        if (ns is null || !ns.StartsWith(DataplaneRoot + ".", StringComparison.Ordinal))
        {
            return null;
        }
        string rest = ns[(DataplaneRoot.Length + 1)..];
        int dot = rest.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? rest : rest[..dot];
    }

    /// <summary>Component -> components it depends on, each with one reference as the witness.</summary>
    private static Dictionary<string, Dictionary<string, string>> ComponentGraph()
    {
        var graph = new Dictionary<string, Dictionary<string, string>>(StringComparer.Ordinal);
        foreach (var type in DataplaneArchitecture.Value.Types)
        {
            string? from = Component(type.Namespace?.FullName);
            if (from is null)
            {
                continue;
            }
            if (!graph.TryGetValue(from, out var edges))
            {
                graph[from] = edges = new Dictionary<string, string>(StringComparer.Ordinal);
            }
            foreach (var dependency in type.Dependencies)
            {
                string? to = Component(dependency.Target.Namespace?.FullName);
                if (to is not null && to != from)
                {
                    edges.TryAdd(to, $"{type.FullName} -> {dependency.Target.FullName}");
                }
            }
        }
        return graph;
    }

    private static string Witnesses(IReadOnlyList<string> cycle)
    {
        var graph = ComponentGraph();
        var lines = new List<string>();
        foreach (string from in cycle)
        {
            foreach (string to in cycle)
            {
                if (graph.TryGetValue(from, out var edges) && edges.TryGetValue(to, out string? witness))
                {
                    lines.Add($"    {from} -> {to}: {witness}");
                }
            }
        }
        return string.Join("\n", lines);
    }

    /// <summary>The strongly connected sets of more than one component (Tarjan), each sorted by name.</summary>
    private static List<List<string>> Cycles(Dictionary<string, Dictionary<string, string>> graph)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var low = new Dictionary<string, int>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        var onStack = new HashSet<string>(StringComparer.Ordinal);
        var result = new List<List<string>>();
        int next = 0;

        void Visit(string v)
        {
            index[v] = low[v] = next++;
            stack.Push(v);
            onStack.Add(v);
            foreach (string w in graph.TryGetValue(v, out var edges) ? edges.Keys.ToList() : [])
            {
                if (!index.ContainsKey(w))
                {
                    Visit(w);
                    low[v] = Math.Min(low[v], low[w]);
                }
                else if (onStack.Contains(w))
                {
                    low[v] = Math.Min(low[v], index[w]);
                }
            }
            if (low[v] == index[v])
            {
                var set = new List<string>();
                string w;
                do
                {
                    w = stack.Pop();
                    onStack.Remove(w);
                    set.Add(w);
                }
                while (w != v);
                if (set.Count > 1)
                {
                    set.Sort(StringComparer.Ordinal);
                    result.Add(set);
                }
            }
        }

        foreach (string v in graph.Keys.Order(StringComparer.Ordinal))
        {
            if (!index.ContainsKey(v))
            {
                Visit(v);
            }
        }
        result.Sort((a, b) => string.CompareOrdinal(a[0], b[0]));
        return result;
    }
}
