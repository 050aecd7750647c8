using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.Loader;

namespace Natd.AbRunner;

/// <summary>
/// The in-process A/B of <c>perf/ab --in-process</c>: loads the <c>Natd.Benchmarks.dll</c> of two
/// builds side by side (each in its own <see cref="AssemblyLoadContext"/>, with its own copy of the
/// dataplane), sets up one benchmark of each the way BenchmarkDotNet would (properties, the global
/// setup that targets the method), then times the method of both in alternation: before, after,
/// after, before in every round, so drift of the machine hits both sides alike. Prints one line:
/// the median time per operation (ns) of each side and the median of the rounds' after/before
/// ratios.
/// </summary>
/// <remarks>
/// Why: on a shared machine a process can run at one of two speeds for its whole life (about 1.4x
/// apart here, perf/README.md), so BenchmarkDotNet's one process per case compares speeds of
/// processes as much as builds. In one process both builds share the speed; what is left is where
/// each build's code and arrays land, which differs per process: <c>perf/ab</c> runs several
/// processes, alternating which side loads first, and reports their geometric mean.
/// </remarks>
public static class Program
{
    /// <summary>
    /// <c>Natd.AbRunner BEFORE_DIR AFTER_DIR CLASS METHOD [--rounds N] [--invocations N]
    /// [--iteration-setup M] [--iteration-cleanup M] [Property=Value ...]</c>. Exit code 0, or 2
    /// on a usage error or when a side cannot be loaded or set up.
    /// </summary>
    public static int Main(string[] args)
    {
        if (args.Length < 4)
        {
            Console.Error.WriteLine("usage: Natd.AbRunner BEFORE_DIR AFTER_DIR CLASS METHOD [--rounds N] [--invocations N] [--iteration-setup M] [--iteration-cleanup M] [Property=Value ...]");
            return 2;
        }
        int rounds = 21, invocations = 1000;
        string? iterationSetup = null, iterationCleanup = null;
        var properties = new List<KeyValuePair<string, string>>();
        for (int i = 4; i < args.Length; i++)
        {
            string a = args[i];
            bool hasValue = i + 1 < args.Length;
            if (a == "--rounds" && hasValue && int.TryParse(args[i + 1], out rounds) && rounds > 0)
            {
                i++;
            }
            else if (a == "--invocations" && hasValue && int.TryParse(args[i + 1], out invocations) && invocations > 0)
            {
                i++;
            }
            else if (a == "--iteration-setup" && hasValue)
            {
                iterationSetup = args[++i];
            }
            else if (a == "--iteration-cleanup" && hasValue)
            {
                iterationCleanup = args[++i];
            }
            else if (!a.StartsWith('-') && a.IndexOf('=') > 0)
            {
                properties.Add(new(a[..a.IndexOf('=')], a[(a.IndexOf('=') + 1)..]));
            }
            else
            {
                Console.Error.WriteLine($"Natd.AbRunner: bad argument '{a}' (--rounds and --invocations take a positive number)");
                return 2;
            }
        }
        var sides = new Side[2];
        for (int k = 0; k < 2; k++)
        {
            try
            {
                sides[k] = Side.Load(args[k], args[2], args[3], properties, iterationSetup, iterationCleanup);
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or TargetInvocationException or BadImageFormatException)
            {
                Console.Error.WriteLine($"Natd.AbRunner: {(k == 0 ? "before" : "after")} side ({args[k]}): {(e is TargetInvocationException t ? t.InnerException?.Message : e.Message)}");
                return 2;
            }
        }
        // Warm-up: tiered compilation reaches its optimised code on both sides before timing.
        for (int w = 0; w < 3; w++)
        {
            sides[0].Measure(invocations);
            sides[1].Measure(invocations);
        }
        var before = new double[rounds];
        var after = new double[rounds];
        var ratio = new double[rounds];
        for (int r = 0; r < rounds; r++)
        {
            double b1 = sides[0].Measure(invocations), a1 = sides[1].Measure(invocations);
            double a2 = sides[1].Measure(invocations), b2 = sides[0].Measure(invocations);
            before[r] = (b1 + b2) / 2;
            after[r] = (a1 + a2) / 2;
            ratio[r] = (a1 + a2) / (b1 + b2);
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"before {Median(before):F1} ns, after {Median(after):F1} ns, after/before {Median(ratio):F3} (rounds {rounds}, min {Min(ratio):F3}, max {Max(ratio):F3})"));
        return 0;
    }

    private static double Median(double[] values)
    {
        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[(n / 2) - 1] + sorted[n / 2]) / 2;
    }

    private static double Min(double[] values)
    {
        double m = double.MaxValue;
        foreach (double v in values)
        {
            m = Math.Min(m, v);
        }
        return m;
    }

    private static double Max(double[] values)
    {
        double m = double.MinValue;
        foreach (double v in values)
        {
            m = Math.Max(m, v);
        }
        return m;
    }
}

/// <summary>One build's benchmark, set up and ready to time.</summary>
internal sealed class Side
{
    private readonly Func<int> _run;
    private readonly Action? _iterationSetup;
    private readonly Action? _iterationCleanup;
    private readonly int _operationsPerInvoke;

    private Side(Func<int> run, Action? iterationSetup, Action? iterationCleanup, int operationsPerInvoke)
    {
        _run = run;
        _iterationSetup = iterationSetup;
        _iterationCleanup = iterationCleanup;
        _operationsPerInvoke = operationsPerInvoke;
    }

    /// <summary>
    /// Loads <c>Natd.Benchmarks.dll</c> from <paramref name="dir"/> in a context of its own, creates
    /// <paramref name="className"/>, sets <paramref name="properties"/>, runs the [GlobalSetup] that
    /// targets <paramref name="methodName"/> (or the untargeted one).
    /// </summary>
    /// <exception cref="InvalidOperationException">No such class, method or property, or the method does not return int.</exception>
    public static Side Load(string dir, string className, string methodName, List<KeyValuePair<string, string>> properties, string? iterationSetup, string? iterationCleanup)
    {
        string path = Path.GetFullPath(Path.Combine(dir, "Natd.Benchmarks.dll"));
        var context = new BuildContext(path);
        Assembly assembly = context.LoadFromAssemblyPath(path);
        Type type = Array.Find(assembly.GetTypes(), t => t.Name == className && !t.IsAbstract)
            ?? throw new InvalidOperationException($"no benchmark class '{className}'");
        object instance = Activator.CreateInstance(type) ?? throw new InvalidOperationException($"cannot create '{className}'");
        foreach (var (name, value) in properties)
        {
            PropertyInfo p = type.GetProperty(name) ?? throw new InvalidOperationException($"'{className}' has no property '{name}'");
            p.SetValue(instance, Convert.ChangeType(value, p.PropertyType, CultureInfo.InvariantCulture));
        }
        MethodInfo method = type.GetMethod(methodName, Type.EmptyTypes) ?? throw new InvalidOperationException($"'{className}' has no method '{methodName}()'");
        if (method.ReturnType != typeof(int))
        {
            throw new InvalidOperationException($"'{methodName}' must return int (its result keeps the work from being elided)");
        }
        int operations = 1;
        foreach (CustomAttributeData a in method.GetCustomAttributesData())
        {
            foreach (CustomAttributeNamedArgument n in a.NamedArguments)
            {
                if (n.MemberName == "OperationsPerInvoke" && n.TypedValue.Value is int o)
                {
                    operations = o;
                }
            }
        }
        GlobalSetup(type, methodName)?.Invoke(instance, null);
        return new Side(
            method.CreateDelegate<Func<int>>(instance),
            iterationSetup is null ? null : Action(type, instance, iterationSetup),
            iterationCleanup is null ? null : Action(type, instance, iterationCleanup),
            operations);
    }

    private static Action Action(Type type, object instance, string name)
        => (type.GetMethod(name, Type.EmptyTypes) ?? throw new InvalidOperationException($"'{type.Name}' has no method '{name}()'")).CreateDelegate<Action>(instance);

    /// <summary>The [GlobalSetup] method whose Target or Targets names <paramref name="method"/>, else the one without targets, else null.</summary>
    private static MethodInfo? GlobalSetup(Type type, string method)
    {
        MethodInfo? untargeted = null;
        foreach (MethodInfo m in type.GetMethods())
        {
            foreach (CustomAttributeData a in m.GetCustomAttributesData())
            {
                if (a.AttributeType.Name != "GlobalSetupAttribute")
                {
                    continue;
                }
                if (a.NamedArguments.Count == 0)
                {
                    untargeted = m;
                }
                foreach (CustomAttributeNamedArgument n in a.NamedArguments)
                {
                    if ((n.MemberName == "Target" && n.TypedValue.Value as string == method)
                        || (n.MemberName == "Targets" && n.TypedValue.Value is IReadOnlyCollection<CustomAttributeTypedArgument> targets && Names(targets).Contains(method)))
                    {
                        return m;
                    }
                }
            }
        }
        return untargeted;
    }

    private static List<string> Names(IReadOnlyCollection<CustomAttributeTypedArgument> targets)
    {
        var names = new List<string>();
        foreach (CustomAttributeTypedArgument t in targets)
        {
            if (t.Value is string s)
            {
                names.Add(s);
            }
        }
        return names;
    }

    /// <summary>Runs the iteration setup, times <paramref name="invocations"/> calls, runs the iteration cleanup; ns per operation.</summary>
    public double Measure(int invocations)
    {
        _iterationSetup?.Invoke();
        int sink = 0;
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < invocations; i++)
        {
            sink += _run();
        }
        long t1 = Stopwatch.GetTimestamp();
        _iterationCleanup?.Invoke();
        GC.KeepAlive(sink);
        return (t1 - t0) * 1e9 / Stopwatch.Frequency / ((double)invocations * _operationsPerInvoke);
    }
}

/// <summary>A build's own load context: its assemblies resolve from its folder, framework assemblies from the host.</summary>
internal sealed class BuildContext(string mainAssembly) : AssemblyLoadContext(isCollectible: false)
{
    private readonly AssemblyDependencyResolver _resolver = new(mainAssembly);

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        string? path = _resolver.ResolveAssemblyToPath(assemblyName);
        return path is null ? null : LoadFromAssemblyPath(path);
    }

    protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
    {
        string? path = _resolver.ResolveUnmanagedDllToPath(unmanagedDllName);
        return path is null ? IntPtr.Zero : LoadUnmanagedDllFromPath(path);
    }
}
