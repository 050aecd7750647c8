using Natd.Fuzzing;
using Natd.Fuzzing.Targets;
using SharpFuzz;

// natd's coverage-guided fuzzer (SharpFuzz driven by afl-fuzz; see tests/Fuzz/README.md).
//   Natd.Fuzzing TARGET               run under afl-fuzz (input on stdin), TARGET: packet, config, pcap, alg, cgn
//   Natd.Fuzzing replay TARGET FILE…  run files through a target without afl; exit 1 on the first failure
//   Natd.Fuzzing seed CORPUS_DIR      (re)write the generated seed files of every target's corpus
if (args.Length >= 2 && args[0] == "seed")
{
    Seeds.Write(args[1]);
    return 0;
}
if (args.Length >= 2 && args[0] == "replay")
{
    FuzzTarget? t = FuzzTargets.Get(args[1]) ?? throw new ArgumentException($"unknown target '{args[1]}'");
    foreach (string file in args[2..])
    {
        t(File.ReadAllBytes(file));
        Console.WriteLine($"ok {file}");
    }
    return 0;
}
FuzzTarget? target = args.Length == 1 ? FuzzTargets.Get(args[0]) : null;
if (target is null)
{
    Console.Error.WriteLine($"usage: Natd.Fuzzing {string.Join('|', FuzzTargets.Names)} | replay TARGET FILE... | seed DIR");
    return 2;
}
// Out of process: SharpFuzz forks a child per run of inputs, so a stack overflow or other
// uncatchable failure is reported to afl as a crash instead of killing the forkserver.
Fuzzer.OutOfProcess.Run(stream =>
{
    using var ms = new MemoryStream();
    stream.CopyTo(ms);
    target(ms.GetBuffer().AsSpan(0, (int)ms.Length));
});
return 0;
