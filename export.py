"""Exports a trained run for serving: ``python export.py --run runs/<name>``.

Writes, for each direction the model translates (CycleGAN: AtoB and BtoA,
one model each; pix2pix and colorization: AtoB), a SavedModel that TF
Serving and ``tf.saved_model.load`` load as it is, with the signatures

    serving_default    images: uint8 [N, H, W, C], any H and W (C: 1 grey,
                       3 RGB, 2 or 4 with alpha, dropped) -> images: uint8
                       [N, H, W, C_out], the translation as sample.py writes
                       it (colorization: L in, RGB out)
    translate          images: float32 [N, H, W, C_in] in [-1, 1], the
                       model's input (colorization: L / 50 - 1) -> images:
                       float32 [N, H, W, C_out] in [-1, 1]
    translate_encoded  images_bytes: string [N], JPEG/PNG/GIF/BMP files of
                       any sizes -> images_bytes: string [N], PNG files

into --export_dir (default <run>/export): the folder itself for one
direction, else AtoB/ and BtoA/ in it. --format frozen_graph adds
frozen_graph.pb (a GraphDef of constants: input_images:0 -> output_images:0,
as serving_default), --format tflite adds model.tflite (serving_default with
the model's input channels: 3, or 1 for colorization's L; any batch and size,
or the fixed size --tflite_size), --format onnx adds model.onnx (serving_default
with the model's input channels, as model.tflite) and model_float.onnx
(translate), converted by tf2onnx (pip install -r requirements-onnx.txt; any
batch and size, or the fixed size --onnx_size). Each folder also holds
config.json (the run's) and export.json (model, direction, checkpoint, step,
mode, the files of each format).

The generators run in inference mode (batch-norm moving averages, no
dropout), as sample.py --eval; --train_mode runs them as in training, as
sample.py without --eval. Both are the same for CycleGAN's default
generators (instance norm, no dropout).

The run's latest checkpoint is exported, or --checkpoint PREFIX, or --best
(the checkpoint named in <run>/checkpoints/best.json). A run imported by
import_torch.py exports, at its imported checkpoint, only the directions
whose generator was imported.

The export is written into a temporary folder beside --export_dir and
renamed into place when complete; an existing export is replaced only with
--overwrite. A failure, Ctrl-C or SIGTERM removes the temporary folder. The
TFLite converter runs in a child process (a crash of it is one line), and a
--tflite_size at which the generator's largest tensor would have 2^31
elements or more (TFLite's limit) is refused before converting.

Exit status: 0 done; 2 a bad command line, run, checkpoint or export folder
(one line on stderr); 130 interrupted (Ctrl-C, SIGTERM).
"""

import sys

from cyclegan_tf import config
from cyclegan_tf.interop import exporting
from cyclegan_tf.running import commands, session


def parse(argv):
    """The ExportConfig of the command line ``argv`` (argv[0]: the program)."""
    return config.parse_settings(config.ExportConfig, argv)


def run(argv):
    if commands.wants_help(argv):
        return commands.print_help(__doc__, config.ExportConfig)
    plan = exporting.plan(parse(argv))  # before TensorFlow loads: bad input fails at once
    with commands.sigterm_as_interrupt():  # the temporary folder goes, as after Ctrl-C
        folders = exporting.export(plan)
    print(f'Wrote {plan.export_dir} ({", ".join(folders)})')
    return commands.EXIT_OK


def main(argv=None):
    session.quiet_tensorflow()  # before anything imports TensorFlow
    return commands.run_command('export.py', run, sys.argv if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
