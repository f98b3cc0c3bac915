using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;

namespace Clip.MLNet.Training;

// The checkpoint format of training: a step-N folder with the model (safetensors), the optimizer state and
// trainer.json (steps, batch size, seed, config, history), written to a temporary folder and moved into place.
public sealed partial class ClipTrainer
{
    private const string StateFile = "trainer.json";
    private const string ModelFile = "model.safetensors";
    private const string OptimizerFile = "optimizer.bin";

    private void SaveCheckpoint(string folder, AdamW optimizer, int completedSteps, int stepsPerEpoch, int batchSize, ClipTrainingHistory history)
    {
        Directory.CreateDirectory(folder);
        var name = $"step-{completedSteps:D8}";
        var final = Path.Combine(folder, name);
        var temp = Path.Combine(folder, $".{name}.tmp-{Environment.ProcessId}");
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        Model.Save(Path.Combine(temp, ModelFile));
        optimizer.save_state_dict(Path.Combine(temp, OptimizerFile));
        var state = new JsonObject
        {
            ["format"] = "clip.mlnet.training",
            ["version"] = 1,
            ["completed_steps"] = completedSteps,
            ["steps_per_epoch"] = stepsPerEpoch,
            ["batch_size"] = batchSize,
            ["seed"] = Options.Seed,
            ["clip_config"] = Model.Config.ToJson(),
            ["history"] = JsonSerializer.SerializeToNode(history),
        };
        File.WriteAllText(Path.Combine(temp, StateFile), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(temp, final);
        File.WriteAllText(Path.Combine(folder, "latest"), name);
    }

    /// <summary>Restores model, optimizer and history from a checkpoint; returns the number of completed steps.</summary>
    private int LoadCheckpoint(string path, AdamW optimizer, int stepsPerEpoch, int batchSize, ClipTrainingHistory history)
    {
        var folder = path;
        if (!File.Exists(Path.Combine(folder, StateFile)))
        {
            var latest = Path.Combine(path, "latest");
            if (File.Exists(latest)) folder = Path.Combine(path, File.ReadAllText(latest).Trim());
            else if (Directory.Exists(path))
                folder = Directory.GetDirectories(path, "step-*").OrderBy(d => d, StringComparer.Ordinal).LastOrDefault() ?? path;
        }
        var stateFile = Path.Combine(folder, StateFile);
        if (!File.Exists(stateFile)) throw new FileNotFoundException($"{path}: no training checkpoint here (no {StateFile}).", stateFile);
        JsonObject state;
        try { state = JsonNode.Parse(File.ReadAllText(stateFile))!.AsObject(); }
        catch (JsonException e) { throw new InvalidDataException($"{stateFile}: not a training checkpoint ({e.Message})", e); }
        if ((string?)state["format"] != "clip.mlnet.training") throw new InvalidDataException($"{stateFile}: not a Clip.MLNet training checkpoint.");
        var config = ClipConfig.FromJson((string)state["clip_config"]!);
        if (config != Model.Config)
            throw new InvalidDataException($"{folder}: the checkpoint is of another model configuration and cannot resume this one. Checkpoint: {config.Describe()} ({config.Activation}); model: {Model.Config.Describe()} ({Model.Config.Activation}).");
        int savedSteps = (int)state["steps_per_epoch"]!, savedBatch = (int)state["batch_size"]!, savedSeed = (int)state["seed"]!;
        if (savedSteps != stepsPerEpoch || savedBatch != batchSize || savedSeed != Options.Seed)
            throw new InvalidDataException($"{folder}: the checkpoint was made with batch size {savedBatch}, {savedSteps} steps per epoch and seed {savedSeed}; this run has {batchSize}, {stepsPerEpoch} and {Options.Seed}. Resume with the same data and options.");

        using (var saved = ClipModel.Load(Path.Combine(folder, ModelFile)))
        using (torch.no_grad())
        {
            var source = saved.state_dict();
            foreach (var (name, tensor) in Model.state_dict()) tensor.copy_(source[name]);
        }
        optimizer.load_state_dict(Path.Combine(folder, OptimizerFile));
        var saved_history = state["history"].Deserialize<ClipTrainingHistory>() ?? new ClipTrainingHistory();
        history.Epochs.AddRange(saved_history.Epochs);
        history.StepLosses.AddRange(saved_history.StepLosses);
        history.CompletedSteps = saved_history.CompletedSteps;
        return (int)state["completed_steps"]!;
    }
}
