namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
    /// <summary>Temporary until the GRE translator lands.</summary>
    public void ApplyGreCall(in Alg.GreCall call)
    {
        _ = call;
    }
}
