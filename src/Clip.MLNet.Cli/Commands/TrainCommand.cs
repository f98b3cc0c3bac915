using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Clip.MLNet.Data;
using Clip.MLNet.Training;
using Clip.MLNet.Transforms;
using TorchSharp;

namespace Clip.MLNet.Cli.Commands;

/// <summary><c>clip train</c>: contrastive training from the shell, from scratch or fine-tuning.</summary>
internal static class TrainCommand
{
    private const string Presets = "rn-small (ModifiedResNet [1,1,1,1], width 32), vit-small (ViT patch S/4, width 128, 4 layers), RN50, ViT-B/32, ViT-B/16, or a JSON file of a ClipConfig";

    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "Training data: " + DatasetSpec.Grammar, Required = true };
        var templates = new Option<string?>("--templates") { Description = "A file of caption templates ({} = class name), one per line: captions for a labelled dataset, drawn at random each epoch." };
        var output = new Option<string>("--output") { Description = "Where to save the trained model (safetensors, with its tokenizer).", Required = true };
        var model = CommonOptions.Model(required: false);
        model.Description = "Fine-tune this model (file, folder or registered name) instead of training from scratch.";
        var arch = new Option<string>("--arch") { Description = "Architecture when training from scratch: " + Presets + ".", DefaultValueFactory = _ => "rn-small" };
        var imageSize = new Option<int>("--image-size") { Description = "Input size of rn-small / vit-small.", DefaultValueFactory = _ => 32 };
        var context = new Option<int>("--context") { Description = "Text context length of rn-small / vit-small (other architectures bring their own).", DefaultValueFactory = _ => 32 };
        var vocab = CommonOptions.Vocab();
        vocab.Description = "CLIP's BPE vocabulary for a model trained from scratch (default: a vocabulary learned from the captions).";
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 10, Description = "Training epochs." };
        var batch = CommonOptions.Batch(256);
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => 5e-4, Description = "Peak learning rate." };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 100, Description = "Warm-up steps." };
        var weightDecay = new Option<double>("--weight-decay") { DefaultValueFactory = _ => 0.2, Description = "AdamW weight decay (matrices only)." };
        var accumulate = new Option<int>("--accumulate") { DefaultValueFactory = _ => 1, Description = "Micro-batches per step (exact: the loss still spans the whole batch)." };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 1, Description = "Seed of initialisation, data order and augmentation." };
        var augment = new Option<bool>("--augment") { Description = "Random resized crop (scale 0.75-1) of training images." };
        var lockImage = new Option<bool>("--lock-image") { Description = "Freeze the image tower." };
        var lockText = new Option<bool>("--lock-text") { Description = "Freeze the text tower." };
        var lossOption = new Option<string>("--loss")
        {
            Description = "contrastive (CLIP's, default) or sigmoid (SigLIP's pairwise sigmoid loss with a learned bias, started at " +
                "log 10 and -10 for a new model; fine-tuning with it needs a model with a logit_bias).",
            DefaultValueFactory = _ => "contrastive",
        };
        var plainLoss = new Option<bool>("--plain-loss") { Description = "CLIP's plain loss: only a pair itself is its positive (default: identical captions, or same class with --templates)." };
        var checkpoints = new Option<string?>("--checkpoint-dir") { Description = "Write checkpoints here (each epoch, every --checkpoint-every steps, and on Ctrl+C)." };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Steps between checkpoints (0: each epoch)." };
        var resume = new Option<string?>("--resume") { Description = "Resume from a checkpoint (a step-N folder, or the --checkpoint-dir for its latest)." };
        var maxItems = new Option<int?>("--max-items") { Description = "Train on a seeded random subset of this many items." };
        var skipBad = new Option<bool>("--skip-bad") { Description = "Skip and count unreadable images and pairs without a caption (default: stop with an error naming them)." };
        var threads = new Option<int?>("--threads") { Description = "Intra-op threads of the forward and backward passes." };
        var activation = CommonOptions.Activation();
        var command = new Command("train", "Train a CLIP model with the contrastive (or --loss sigmoid) loss, from scratch or fine-tuning, on an image folder, a captions CSV, idx (MNIST, Fashion-MNIST) or CIFAR files.")
        {
            data, templates, output, model, arch, imageSize, context, vocab, epochs, batch, lr, warmup, weightDecay, accumulate, seed,
            augment, lockImage, lockText, lossOption, plainLoss, checkpoints, checkpointEvery, resume, maxItems, skipBad, threads, activation,
        };
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            if (parse.GetValue(threads) is { } t)
            {
                if (t <= 0) throw new CliInputException($"--threads must be positive, got {t}");
                torch.set_num_threads(t);
            }
            DatasetSpec spec;
            try { spec = DatasetSpec.Parse(parse.GetValue(data)!); }
            catch (FormatException e) { throw new CliInputException($"--data: {e.Message}", e); }
            var dataset = spec.Load("train");
            if (parse.GetValue(maxItems) is { } max)
            {
                if (max < 2) throw new CliInputException($"--max-items must be at least 2, got {max}");
                dataset = dataset.Sample(max, parse.GetValue(seed));
            }
            IReadOnlyList<string>? templateList = parse.GetValue(templates) is { } tf ? ZeroShotCommand.ReadTemplates(tf) : null;
            ClipTrainingData pairs;
            try { pairs = ClipTrainingData.FromDataset(dataset, templateList); }
            catch (ArgumentException e) { throw new CliInputException($"--data {spec.Text}: {e.Message}", e); }

            ClipModel clip;
            ClipTokenizer tokenizer;
            if (parse.GetValue(model) is { } modelPath)
            {
                clip = CommonOptions.LoadModel(modelPath, "fp32", parse.GetValue(activation), parse.GetValue(vocab));
                tokenizer = parse.GetValue(vocab) is { } v ? ClipTokenizer.Load(v, clip.ContextLength) : clip.Tokenizer
                    ?? throw new CliInputException("--vocab is required: the model to fine-tune carries no tokenizer");
            }
            else
            {
                var archName = parse.GetValue(arch)!;
                // --context sizes the small presets; OpenAI's presets and a config file bring their own context length.
                int ctx = archName is "rn-small" or "vit-small"
                    ? parse.GetValue(context)
                    : Architecture(archName, parse.GetValue(imageSize), parse.GetValue(context)).ContextLength;
                tokenizer = parse.GetValue(vocab) is { } v
                    ? ClipTokenizer.Load(v, ctx)
                    : ClipTokenizer.Train(pairs.CaptionCorpus(), ctx);
                var config = Architecture(archName, parse.GetValue(imageSize), tokenizer.ContextLength) with
                {
                    VocabSize = tokenizer.VocabularySize,
                    HasLogitBias = ParseLoss(parse.GetValue(lossOption)) == ClipLoss.Sigmoid,
                };
                torch.manual_seed(parse.GetValue(seed));
                clip = ClipModel.Create(config);
            }
            using (clip)
            {
                var options = new ClipTrainingOptions
                {
                    Epochs = parse.GetValue(epochs),
                    BatchSize = CommonOptions.CheckBatch(parse.GetValue(batch)),
                    LearningRate = parse.GetValue(lr),
                    WarmupSteps = parse.GetValue(warmup),
                    WeightDecay = parse.GetValue(weightDecay),
                    AccumulationSteps = parse.GetValue(accumulate),
                    Seed = parse.GetValue(seed),
                    Augmentation = parse.GetValue(augment) ? new RandomResizedCropOptions { MinScale = 0.75 } : null,
                    LockImageTower = parse.GetValue(lockImage),
                    LockTextTower = parse.GetValue(lockText),
                    IdenticalCaptionsArePositives = !parse.GetValue(plainLoss),
                    Loss = ParseLoss(parse.GetValue(lossOption)),
                    CheckpointFolder = parse.GetValue(checkpoints),
                    CheckpointEverySteps = parse.GetValue(checkpointEvery),
                    ResumeFrom = parse.GetValue(resume),
                    BadRows = parse.GetValue(skipBad) ? BadRowHandling.Skip : BadRowHandling.Error,
                    PrepareThreads = 1,
                };
                try { options.Validate(); }
                catch (ArgumentException e) { throw new CliInputException(e.Message, e); }
                if (options.Loss == ClipLoss.Sigmoid && clip.LogitBias is null)
                    throw new CliInputException($"--loss sigmoid: {parse.GetValue(model) ?? "the model"} has no logit_bias (a SigLIP checkpoint has one; a new model gets one); use --loss contrastive");

                using var cancel = new CancellationTokenSource();
                ConsoleCancelEventHandler onCancel = (_, e) =>
                {
                    e.Cancel = true;
                    Console.Error.WriteLine("\nstopping at the next step ...");
                    cancel.Cancel();
                };
                Console.CancelKeyPress += onCancel;
                Console.Error.WriteLine($"Training a {clip.Config.Describe()} on {pairs.Count} pairs from {spec.Text}; {options.Epochs} epochs of batch {options.BatchSize}.");
                ClipTrainingHistory history;
                try { history = new ClipTrainer(clip, tokenizer, options).Train(pairs, new TrainingProgressPrinter(), cancel.Token); }
                finally { Console.CancelKeyPress -= onCancel; }

                var outputPath = parse.GetValue(output)!;
                clip.Save(outputPath);
                var logPath = Path.ChangeExtension(outputPath, ".training.json");
                File.WriteAllText(logPath, JsonSerializer.Serialize(history, new JsonSerializerOptions { WriteIndented = true }));
                Console.WriteLine("| epoch | loss | in-batch accuracy | seconds | pairs/s |");
                Console.WriteLine("|---:|---:|---:|---:|---:|");
                foreach (var e in history.Epochs)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {e.Epoch} | {e.Loss:F4} | {e.Accuracy:P1} | {e.Seconds:F0} | {e.PairsPerSecond:F0} |"));
                if (history.SkippedPairs > 0) Console.WriteLine($"Skipped {history.SkippedPairs} bad pairs.");
                Console.WriteLine(history.Cancelled
                    ? $"Stopped early after step {history.CompletedSteps}; saved that state to {outputPath}" + (options.CheckpointFolder is null ? "." : $" and a checkpoint to {options.CheckpointFolder} (resume with --resume).")
                    : $"Saved the model (with its tokenizer) to {outputPath} and the training log to {logPath}.");
                return history.Cancelled ? ExitCodes.Cancelled : ExitCodes.Ok;
            }
        }));
        return command;
    }

    internal static ClipConfig Architecture(string name, int imageSize, int contextLength)
    {
        if (imageSize <= 0) throw new CliInputException($"--image-size must be positive, got {imageSize}");
        switch (name)
        {
            case "rn-small":
                if (imageSize % 32 != 0) throw new CliInputException($"rn-small needs an --image-size that is a multiple of 32, got {imageSize}");
                return ClipConfig.ResNetConfig(128, imageSize, new[] { 1, 1, 1, 1 }, 32, 128, 2, contextLength);
            case "vit-small":
                if (imageSize % 4 != 0) throw new CliInputException($"vit-small needs an --image-size that is a multiple of 4, got {imageSize}");
                return ClipConfig.VisionTransformerConfig(128, imageSize, imageSize / 4, 128, 4, 128, 2, contextLength);
            case "RN50": return ClipConfig.ResNetConfig(1024, 224, new[] { 3, 4, 6, 3 }, 64, 512, 12, 77);
            case "ViT-B/32": return ClipConfig.VisionTransformerConfig(512, 224, 32, 768, 12, 512, 12, 77);
            case "ViT-B/16": return ClipConfig.VisionTransformerConfig(512, 224, 16, 768, 12, 512, 12, 77);
        }
        if (File.Exists(name))
        {
            try { return ClipConfig.FromJson(File.ReadAllText(name)); }
            catch (InvalidDataException e) { throw new CliInputException($"--arch {name}: {e.Message}", e); }
        }
        throw new CliInputException($"--arch: unknown architecture '{name}' (expected {Presets})");
    }

    private static ClipLoss ParseLoss(string? name) => name?.Trim().ToLowerInvariant() switch
    {
        "contrastive" or null => ClipLoss.Contrastive,
        "sigmoid" or "siglip" => ClipLoss.Sigmoid,
        _ => throw new CliInputException($"--loss must be contrastive or sigmoid, got '{name}'"),
    };
}
