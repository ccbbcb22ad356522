"""Speech quality on real media, measured by code in the repo; one JSON line at the end.

- Word error rate (after `archive_pipeline.quality.normalise_text`) of each packaged Whisper
  model on ../shared/media/speech (jfk and the three LibriVox clips), per file and overall.
- Diarisation error rate (collar 0.25 s each side) of the offline backend on a generated
  two-voice dialogue (4 turns, reference exact by construction; speaker count automatic) and on
  ../shared/media/speakers/ami-tst00.wav (4 real speakers with overlap; reported, no target).
- Language per segment on generated code-switching files (espeak-ng English and German voices):
  the demo's Berlin interview (German host, English guest) and a reading that switches from
  English to German half-way; the share of segments whose language is the language spoken at
  their middle, per file and per language, and transcription seconds, for the per-span
  detection (the default) and the previous default (one language per file) in the same run.
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


# English then German, read by one voice style each (a lecture switching language half-way)
EN_THEN_DE = [
    (("en", 50), "Good evening. Tonight we look back at the radio programmes of the nineteen "
     "eighties, and at the people who made them in this city."),
    (("en", 50), "The studio was small, the microphones were old, and the news was read live "
     "every hour, day and night."),
    (("de", 50), "Die Grenze wurde geöffnet, und tausende Menschen gingen zum ersten Mal über die "
     "Brücke nach Westberlin."),
    (("de", 50), "Am nächsten Morgen waren die Straßen voller Menschen, und überall hörte man "
     "Musik und Gespräche."),
]  # fmt: skip


def language_accuracy(tmp: Path, item) -> dict:
    """Per-segment language accuracy on generated code-switching files, per-span detection
    against one language per file (the previous default), in the same run."""
    import time
    from dataclasses import replace

    from archive_pipeline.core.store import LocalStore
    from archive_pipeline.demo.build import bilingual_interview, spoken_parts
    from archive_pipeline.stages.speech import TranscribeStage

    files = {
        "berlin_interview": bilingual_interview(tmp / "berlin_interview.wav", tmp),
        "en_then_de": spoken_parts(EN_THEN_DE, tmp / "en_then_de.wav", tmp),
    }
    stage = TranscribeStage(LocalStore(str(tmp)), model_cache=str(tmp / "models"))
    stage.setup()
    out: dict = {}
    for mode, per_span in (("per_span", True), ("per_file", False)):
        stage.settings = replace(stage.settings, language_per_span=per_span)
        figures: dict = {}
        for name, turns in files.items():
            start = time.perf_counter()
            segments = stage.process(item(f"{name}.wav"))["segments"]
            seconds = time.perf_counter() - start
            right: dict[str, list[bool]] = {}
            for seg in segments:
                middle = (seg["start_s"] + seg["end_s"]) / 2
                spoken = min(
                    turns, key=lambda t: 0 if t[0] <= middle <= t[1] else abs(t[0] - middle)
                )
                right.setdefault(spoken[2], []).append(seg["language"] == spoken[2])
            every = [ok for oks in right.values() for ok in oks]
            figures[name] = {
                "segments": len(segments),
                "accuracy": round(sum(every) / len(every), 3) if every else None,
                **{
                    f"accuracy_{lang}": round(sum(oks) / len(oks), 3) for lang, oks in right.items()
                },
                "transcribe_s": round(seconds, 2),
            }
            print(f"language {mode:<9} {name:<17} {json.dumps(figures[name])}")
        out[mode] = figures
    return out


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
        result["language"] = language_accuracy(tmp_dir, item)
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
