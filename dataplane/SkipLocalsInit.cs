// The JIT would zero every stack frame's locals on entry; the packet path's frames are large
// (parsed headers, spans, contexts), and C#'s definite assignment already keeps a local from being
// read before it is written. What it cannot see, stackalloc'd memory and native structs passed by
// address, is written in full or initialised with `default`/`new` at each site (docs/architecture.md,
// "Native interop").
[module: System.Runtime.CompilerServices.SkipLocalsInit]
