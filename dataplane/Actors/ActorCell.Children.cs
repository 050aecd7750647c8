namespace Natd.Dataplane.Actors;

/// <summary>The child table: creation, lookup, stop requests. Locked because the user guardian's ActorOf is called from any thread.</summary>
internal sealed partial class ActorCell
{
    private readonly object _childrenLock = new();
    private readonly Dictionary<string, ChildRecord> _children = new(StringComparer.Ordinal);

    public IReadOnlyList<IActorRef> Children
    {
        get
        {
            lock (_childrenLock)
            {
                var refs = new IActorRef[_children.Count];
                int i = 0;
                foreach (ChildRecord record in _children.Values)
                {
                    refs[i++] = record.Cell.Self;
                }

                return refs;
            }
        }
    }

    public IActorRef? Child(string name)
    {
        lock (_childrenLock)
        {
            return _children.TryGetValue(name, out ChildRecord? record) ? record.Cell.Self : null;
        }
    }

    public IActorRef ActorOf(Props props, string name)
    {
        ArgumentNullException.ThrowIfNull(props);
        ValidateName(name);
        ActorCell child;
        lock (_childrenLock)
        {
            if (_terminating)
            {
                throw new InvalidOperationException($"{Path} is stopping; cannot create child '{name}'.");
            }

            if (_children.ContainsKey(name))
            {
                throw new InvalidActorNameException($"{Path}/{name} already exists (names are reserved until the old actor has stopped).");
            }

            child = new ActorCell(System, this, props, name, Path + "/" + name);
            _children.Add(name, new ChildRecord(child));
        }

        child.Start();
        return child.Self;
    }

    public void Stop(IActorRef actor)
    {
        ArgumentNullException.ThrowIfNull(actor);
        if (actor is LocalActorRef local)
        {
            if (ReferenceEquals(local.Cell, this))
            {
                RequestStop();
                return;
            }

            if (ReferenceEquals(local.Cell._parent, this))
            {
                // Also for a child that is already gone: stopping twice is harmless, as in Akka.
                local.Cell.RequestStop();
                return;
            }
        }

        throw new ArgumentException($"{actor.Path} is neither {Path} nor one of its children.", nameof(actor));
    }

    /// <summary>Checks an actor name: non-empty, not reserved ($...), only letters, digits and -_.:@+=~.</summary>
    internal static void ValidateName(string name)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw new InvalidActorNameException("Actor name must not be empty.");
        }

        if (name[0] == '$')
        {
            throw new InvalidActorNameException($"Actor name '{name}' is reserved: names starting with '$' are for the system.");
        }

        foreach (char c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && "-_.:@+=~".IndexOf(c) < 0)
            {
                throw new InvalidActorNameException($"Actor name '{name}' has invalid character '{c}'.");
            }
        }
    }

    private ChildRecord? FindChild(ActorCell cell)
    {
        lock (_childrenLock)
        {
            return _children.TryGetValue(cell.Name, out ChildRecord? record) && ReferenceEquals(record.Cell, cell) ? record : null;
        }
    }

    private void RemoveChild(ActorCell cell)
    {
        lock (_childrenLock)
        {
            if (_children.TryGetValue(cell.Name, out ChildRecord? record) && ReferenceEquals(record.Cell, cell))
            {
                _children.Remove(cell.Name);
            }
        }
    }

    private ActorCell[] ChildCells()
    {
        lock (_childrenLock)
        {
            var cells = new ActorCell[_children.Count];
            int i = 0;
            foreach (ChildRecord record in _children.Values)
            {
                cells[i++] = record.Cell;
            }

            return cells;
        }
    }

    private int ChildCount
    {
        get
        {
            lock (_childrenLock)
            {
                return _children.Count;
            }
        }
    }

    private bool AnyChildStopping()
    {
        lock (_childrenLock)
        {
            foreach (ChildRecord record in _children.Values)
            {
                if (record.Cell.IsStopping)
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>A child and the supervisor's restart budget bookkeeping for it (Akka's ChildRestartStats).</summary>
    private sealed class ChildRecord(ActorCell cell)
    {
        private int _restarts;
        private long _windowStart;

        public ActorCell Cell { get; } = cell;

        /// <summary>Counts a restart against the strategy's budget; false means the budget is spent (stop instead).</summary>
        public bool RequestRestartPermission(SupervisorStrategy strategy, TimeProvider time)
        {
            int max = strategy.MaxNrOfRetries;
            if (max < 0)
            {
                return true;
            }

            if (max == 0)
            {
                return false;
            }

            TimeSpan window = strategy.WithinTimeRange;
            if (window <= TimeSpan.Zero || window == Timeout.InfiniteTimeSpan)
            {
                return ++_restarts <= max;
            }

            long now = time.GetTimestamp();
            if (_restarts == 0 || time.GetElapsedTime(_windowStart, now) > window)
            {
                // The window opens at the first restart after a quiet period.
                _restarts = 1;
                _windowStart = now;
                return true;
            }

            return ++_restarts <= max;
        }
    }
}
