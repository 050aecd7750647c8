using Akka.Actor;
using Akka.TestKit.Xunit2;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;

namespace Natd.Tests.Alg;

/// <summary>The helper actors: frames come back in order, a failing handler is restarted (counted) and the others keep working.</summary>
public class AlgHelperActorTests : TestKit
{
    /// <summary>Appends its frame count to each frame; throws on a frame whose first byte is 0xFF.</summary>
    private sealed class CountingHandler : IAlgHandler
    {
        public static int Created;
        private int _seen;

        public CountingHandler() => Interlocked.Increment(ref Created);

        public AlgKind Kind => AlgKind.Ftp;

        public int Handle(in AlgConnection connection, AlgDirection direction, Span<byte> buffer, int length, ushort reservedPort, AlgActions actions, long nowMs)
        {
            if (buffer[0] == 0xFF)
            {
                throw new InvalidOperationException("handler bug");
            }
            buffer[length] = (byte)++_seen;
            actions.Rewrites++;
            return length + 1;
        }

        public static readonly System.Collections.Concurrent.ConcurrentQueue<AlgConnection> Forgotten = new();

        public void Forget(in AlgConnection connection) => Forgotten.Enqueue(connection);

        public int Expire(long nowMs, long idleMs) => 0;

        public void Dispose()
        {
        }
    }

    private static AlgFrame Frame(byte first, long id, IActorRef replyTo)
    {
        var buffer = new byte[16];
        buffer[0] = first;
        var pending = new AlgPending(AlgKind.Ftp, default, AlgDirection.In2Out, Side.Outside, 0, 0, -1, null, default(FlowKey));
        return new AlgFrame(buffer, 4, pending, id, replyTo);
    }

    [Fact]
    public async Task A_forget_after_a_connections_frames_reaches_the_handler_after_them()
    {
        IReadOnlyList<(AlgKind, Func<IAlgHandler>)> algs = [(AlgKind.Ftp, () => new CountingHandler())];
        var supervisor = Sys.ActorOf(Props.Create(() => new AlgSupervisorActor(algs, new AlgRestarts())), "algs-forget");
        var helpers = await supervisor.Ask<IReadOnlyList<IActorRef?>>(AlgSupervisorActor.GetHelpers.Instance, TimeSpan.FromSeconds(5));
        var ftp = Assert.IsAssignableFrom<IActorRef>(helpers[(int)AlgKind.Ftp]);
        var poller = CreateTestProbe("poller-forget");
        var connection = new AlgConnection(IpProtocol.Tcp, 0x0200000a, 40000, 0x020064c6, 21, 0x016433c6, 1024);
        while (CountingHandler.Forgotten.TryDequeue(out _))
        {
        }

        ftp.Tell(Frame(1, 1, poller), poller);
        ftp.Tell(new ForgetAlgConnection(connection), poller);
        ftp.Tell(Frame(1, 2, poller), poller);
        Assert.Equal(1, (await poller.ExpectMsgAsync<AlgFrame>()).RequestId);
        Assert.Equal(2, (await poller.ExpectMsgAsync<AlgFrame>()).RequestId);
        // The helper handles its mailbox in order: the forget was handled before the second frame came back.
        Assert.True(CountingHandler.Forgotten.TryDequeue(out var forgotten));
        Assert.Equal(connection, forgotten);
        Assert.Empty(CountingHandler.Forgotten);
    }

    [Fact]
    public async Task Frames_return_in_order_and_a_crash_restarts_the_helper_with_fresh_state_while_later_frames_still_flow()
    {
        var restarts = new AlgRestarts();
        IReadOnlyList<(AlgKind, Func<IAlgHandler>)> algs = [(AlgKind.Ftp, () => new CountingHandler())];
        var supervisor = Sys.ActorOf(Props.Create(() => new AlgSupervisorActor(algs, restarts)), "algs");
        var helpers = await supervisor.Ask<IReadOnlyList<IActorRef?>>(AlgSupervisorActor.GetHelpers.Instance, TimeSpan.FromSeconds(5));
        var ftp = Assert.IsAssignableFrom<IActorRef>(helpers[(int)AlgKind.Ftp]);
        Assert.Equal("alg-ftp", ftp.Path.Name);
        Assert.Null(helpers[(int)AlgKind.Irc]);
        var poller = CreateTestProbe("poller");

        for (int i = 1; i <= 3; i++)
        {
            ftp.Tell(Frame(1, i, poller));
        }
        for (int i = 1; i <= 3; i++)
        {
            var back = await poller.ExpectMsgAsync<AlgFrame>();
            Assert.Equal(i, back.RequestId);
            Assert.Equal(5, back.Length);
            Assert.Equal(i, back.Buffer[4]); // the handler's state carried across the connection's frames
            Assert.Equal(1, back.Actions.Rewrites);
        }

        // Read only now: the helper's first instance (and its handler) is made on its own thread.
        int createdBefore = Volatile.Read(ref CountingHandler.Created);
        // The supervisor's decision is a restart, which Akka logs as an error with the handler's exception.
        await EventFilter.Exception<InvalidOperationException>("handler bug").ExpectOneAsync(() =>
        {
            ftp.Tell(Frame(0xFF, 4, poller)); // lost with the crash
            return Task.CompletedTask;
        });
        ftp.Tell(Frame(1, 5, poller));
        var after = await poller.ExpectMsgAsync<AlgFrame>();
        Assert.Equal(5, after.RequestId);
        Assert.Equal(1, after.Buffer[4]); // a fresh handler after the restart
        Assert.Equal(1, restarts.Of(AlgKind.Ftp));
        Assert.Equal(0, restarts.Of(AlgKind.Irc));
        Assert.Equal(createdBefore + 1, Volatile.Read(ref CountingHandler.Created));
        await poller.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
    }
}
