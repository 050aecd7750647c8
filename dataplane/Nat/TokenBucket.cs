namespace Natd.Dataplane.Nat;

/// <summary>
/// A rate limit of <see cref="Rate"/> events per second: the bucket starts full, each event takes a
/// token, and the bucket is refilled to <see cref="Rate"/> once a second has passed since the last
/// refill (the rate limit RFC 1812 section 4.3.2.8 asks of ICMP error generation). Times are the
/// engine's milliseconds. No allocation; single writer.
/// </summary>
internal sealed class TokenBucket
{
    private int _tokens;
    private long _refillMs;

    /// <summary>Creates a full bucket.</summary>
    /// <param name="rate">Events allowed per second; 0 or less refuses every event.</param>
    public TokenBucket(int rate)
    {
        Rate = rate;
        _tokens = rate;
    }

    /// <summary>Events allowed per second.</summary>
    public int Rate { get; }

    /// <summary>Takes a token at <paramref name="nowMs"/>; false when none is left this second.</summary>
    public bool TryTake(long nowMs)
    {
        if (nowMs - _refillMs >= 1000)
        {
            _refillMs = nowMs;
            _tokens = Rate;
        }
        if (_tokens <= 0)
        {
            return false;
        }
        _tokens--;
        return true;
    }
}
