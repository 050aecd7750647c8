using System.Threading.Channels;

namespace Natd.Dataplane.Actors;

/// <summary>
/// The runtime side of one actor: its mailbox, current instance, children and lifecycle state
/// (Akka.NET's <c>ActorCell</c>). Split by concern: Dispatch (mailbox and threads), FaultHandling
/// (failure, restart, stop) and Children. Fields without a lock or volatile are touched only by the
/// one thread currently running the cell.
/// </summary>
internal sealed partial class ActorCell : IActorContext
{
    [ThreadStatic]
    private static ActorCell? t_cellBeingCreated;

    private readonly ActorCell? _parent;
    private readonly Channel<SystemMessage> _systemMailbox;
    private readonly Channel<Envelope> _userMailbox;

    private ActorBase? _actor;
    private Envelope _current;

    public ActorCell(ActorSystem system, ActorCell? parent, Props props, string name, string path)
    {
        System = system;
        _parent = parent;
        Props = props;
        Name = name;
        Path = path;
        Self = new LocalActorRef(this);
        _systemMailbox = Channel.CreateUnbounded<SystemMessage>(new UnboundedChannelOptions { SingleReader = true });
        // FullMode Wait makes TryWrite fail instead of evicting queued messages; Tell then drops the new one and counts it.
        _userMailbox = Channel.CreateBounded<Envelope>(new BoundedChannelOptions(props.MailboxCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        if (props.DedicatedThread)
        {
            _signal = new ManualResetEventSlim(false);
            // Linux shows 15 characters of a thread name (comm): the actor's own name is the useful part.
            _thread = new Thread(LoopThreadMain) { Name = name, IsBackground = true };
        }
    }

    public ActorSystem System { get; }

    public string Name { get; }

    public string Path { get; }

    public LocalActorRef Self { get; }

    public Props Props { get; }

    IActorRef IActorContext.Self => Self;

    public IActorRef Sender => _current.Sender ?? System.DeadLetters;

    public IActorRef Parent => _parent is null ? System.DeadLetters : _parent.Self;

    /// <summary>The actor instance (null before creation, after a failed creation and after stop); for tests.</summary>
    internal ActorBase? Actor => _actor;

    /// <summary>Called by <see cref="ActorBase"/>'s constructor: hands the cell to exactly one new instance.</summary>
    internal static ActorCell? TakeCellBeingCreated()
    {
        ActorCell? cell = t_cellBeingCreated;
        t_cellBeingCreated = null;
        return cell;
    }

    /// <summary>Runs the Props factory with this cell bound, and checks it built exactly one new actor.</summary>
    private ActorBase NewActor()
    {
        if (_threadSetupError is not null)
        {
            throw new ActorInitializationException(Path, "thread setup failed", _threadSetupError);
        }

        t_cellBeingCreated = this;
        ActorBase actor;
        bool consumed;
        try
        {
            actor = Props.Factory();
            consumed = t_cellBeingCreated is null;
        }
        catch (Exception ex)
        {
            throw new ActorInitializationException(Path, $"creating {Props.ActorType.Name} failed: {ex.Message}", ex);
        }
        finally
        {
            t_cellBeingCreated = null;
        }

        if (actor is null || !consumed || !ReferenceEquals(actor.Cell, this))
        {
            throw new ActorInitializationException(Path, "the Props factory must return a new actor instance on every call");
        }

        if (actor is LoopActor && _thread is null)
        {
            throw new ActorInitializationException(Path, "a LoopActor needs Props.WithDedicatedThread()");
        }

        return actor;
    }
}
