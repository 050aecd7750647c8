using Natd.Control.Lab;

namespace Natd.Tests.EndToEnd;

/// <summary>Helper programs the end-to-end tests write into the lab's work directory.</summary>
internal static class LabScripts
{
    /// <summary>Writes <paramref name="text"/> (line ends made LF) as <paramref name="name"/> in the lab's work directory; returns its path.</summary>
    public static string Script(LabTopology lab, string name, string text)
    {
        var path = Path.Combine(lab.WorkDirectory, name);
        File.WriteAllText(path, text.Replace("\r", "", StringComparison.Ordinal) + "\n");
        return path;
    }
}
