"""Speech quality on real media, measured by code in the repo; one JSON line at the end.

- Word error rate (after `archive_pipeline.quality.normalise_text`) of each packaged Whisper
  model on ../shared/media/speech (jfk and the three LibriVox clips), per file and overall.
- Diarisation error rate (collar 0.25 s each side) of the offline backend on a generated
  two-voice dialogue (4 turns, reference exact by construction; speaker count automatic) and on
  ../shared/media/speakers/ami-tst00.wav (4 real speakers with overlap; reported, no target).
- pyannote: no weights are available offline, so no pyannote quality figure is produced here.
  Point ARCHIVE_PYANNOTE_PIPELINE at a real pipeline directory to add it (--pyannote).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared-media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--models", nargs="+", default=["base", "tiny.en"])
    parser.add_argument(
        "--pyannote",
        default=os.environ.get("ARCHIVE_PYANNOTE_PIPELINE"),
        help="a real pyannote pipeline directory or hub id to evaluate too",
    )
    args = parser.parse_args()

    import jiwer

    from archive_pipeline.core.store import LocalStore
    from archive_pipeline.quality import (
        diarization_error_rate,
        normalise_text,
        read_rttm,
        speech_references,
    )
    from archive_pipeline.stages.speech import (
        DiarizationSettings,
        DiarizeStage,
        SpeechItem,
        TranscribeStage,
        WhisperSettings,
    )
    from archive_pipeline_tests.speech_fixtures import dialogue

    speech = args.shared_media / "speech"
    refs = speech_references(speech)
    result: dict = {"benchmark": "speech_quality"}

    def item(name: str) -> SpeechItem:
        return SpeechItem(uri=name, store_key=name, media_id=name, sha256=name, duration_s=None)

    with tempfile.TemporaryDirectory(prefix="speech-quality-") as tmp:
        for model in args.models:
            stage = TranscribeStage(
                LocalStore(str(speech)),
                WhisperSettings(model=model),
                model_cache=str(Path(tmp) / "models"),
            )
            stage.setup()
            hyps, per_file = {}, {}
            for name, reference in sorted(refs.items()):
                hyps[name] = " ".join(s["text"] for s in stage.process(item(name))["segments"])
                per_file[name] = jiwer.wer(normalise_text(reference), normalise_text(hyps[name]))
                print(f"WER {model:<8} {name:<20} {per_file[name]:6.3f}  {hyps[name]}")
            overall = jiwer.wer(
                [normalise_text(refs[n]) for n in sorted(refs)],
                [normalise_text(hyps[n]) for n in sorted(refs)],
            )
            print(f"WER {model:<8} {'all (word-weighted)':<20} {overall:6.3f}")
            result[f"wer_{model}"] = round(overall, 4)
            result[f"wer_{model}_per_file"] = {k: round(v, 4) for k, v in per_file.items()}

        tmp_dir = Path(tmp)
        reference = dialogue(tmp_dir / "dialogue.wav")
        (tmp_dir / "ami.wav").write_bytes(
            (args.shared_media / "speakers/ami-tst00.wav").read_bytes()
        )
        backends = [("offline", DiarizationSettings(backend="offline"))]
        if args.pyannote:
            backends.append(
                (
                    "pyannote",
                    DiarizationSettings(backend="pyannote", pyannote_pipeline=args.pyannote),
                )
            )
        ami_ref = read_rttm(args.shared_media / "speakers/ami-tst00.rttm")
        for name, settings in backends:
            stage = DiarizeStage(LocalStore(str(tmp_dir)), settings)
            stage.setup()
            for label, file, ref, uem in (
                ("dialogue", "dialogue.wav", reference, None),
                ("ami", "ami.wav", ami_ref, (0.0, 30.0)),
            ):
                turns = stage.process(item(file))
                hyp = [(t["start"], t["end"], t["speaker"]) for t in turns]
                der = diarization_error_rate(ref, hyp, collar_s=0.25, uem=uem)
                speakers = len({t["speaker"] for t in turns})
                print(f"DER {name:<8} {label:<20} {der:6.3f}  ({speakers} speakers found)")
                result[f"der_{name}_{label}"] = round(der, 4)
                result[f"speakers_{name}_{label}"] = speakers
    print(json.dumps(result))


if __name__ == "__main__":
    main()
