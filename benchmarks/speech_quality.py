"""Speech quality on real media, measured by code in the repo; one JSON line at the end.

- Word error rate (after `archive_pipeline.quality.normalise_text`) of each packaged Whisper
  model on ../shared/media/speech (jfk and the three LibriVox clips), per file and overall.
- Diarisation error rate (collar 0.25 s each side, speaker count automatic) of the default
  backend (pyannote.audio pipeline, packaged segmentation-3.0 + CAM++, spectral clustering)
  and of the previous default (resemblyzer GE2E windows + agglomerative clustering), in the
  same run, on generated files (reference exact by construction): an English and a German
  two-voice dialogue, a four-voice meeting; on ../shared/media/speakers/ami-tst00.wav (4 real
  speakers with overlap, first 30 s); and the speakers found on single-voice files (JFK, the
  LibriVox clips, the demo's German bulletin: must be 1). Per backend: model load seconds and
  real-time factor (processing seconds / audio seconds, median over the files).
- Language per segment on generated code-switching files (espeak-ng English and German voices):
  the demo's Berlin interview (German host, English guest) and a reading that switches from
  English to German half-way; the share of segments whose language is the language spoken at
  their middle, per file and per language, and transcription seconds, for the per-span
  detection (the default) and the previous default (one language per file) in the same run.
- A configured pyannote pipeline (hub weights) is measured too with --pyannote (or
  ARCHIVE_PYANNOTE_PIPELINE).
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
    from archive_pipeline.stages.transcription import TranscribeStage

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


def diarisation(args, tmp: Path, item) -> dict:
    """DER and speakers found per backend and file, load time and real-time factor."""
    import shutil
    import statistics
    import time

    from archive_pipeline.core.audio import SAMPLE_RATE, decode_audio
    from archive_pipeline.core.store import LocalStore
    from archive_pipeline.demo.build import german_bulletin
    from archive_pipeline.quality import diarization_error_rate, read_rttm
    from archive_pipeline.stages.diarisation import DiarizationSettings, DiarizeStage
    from archive_pipeline_tests.speech_fixtures import dialogue, german_dialogue, meeting

    media = args.shared_media
    files: dict[str, tuple[list | None, tuple | None]] = {
        "dialogue_en": (dialogue(tmp / "dialogue_en.wav"), None),
        "dialogue_de": (german_dialogue(tmp / "dialogue_de.wav"), None),
        "meeting_4": (meeting(tmp / "meeting_4.wav"), None),
        "ami": (read_rttm(media / "speakers/ami-tst00.rttm"), (0.0, 30.0)),
    }
    shutil.copyfile(media / "speakers/ami-tst00.wav", tmp / "ami.wav")
    for name in ("jfk.flac", "librivox-0870.wav", "librivox-0880.wav", "librivox-0890.wav"):
        shutil.copyfile(media / "speech" / name, tmp / name)
        files[name.split(".")[0]] = (None, None)
    german_bulletin(tmp / "bulletin_de.flac", tmp)
    files["bulletin_de"] = (None, None)
    paths = {name: next(tmp.glob(f"{name}.*")) for name in files}
    backends = [
        ("default", DiarizationSettings()),
        ("resemblyzer", DiarizationSettings(backend="resemblyzer")),
    ]
    if args.pyannote:
        backends.append(("configured", DiarizationSettings(pyannote_pipeline=args.pyannote)))
    out: dict = {}
    for backend, settings in backends:
        stage = DiarizeStage(LocalStore(str(tmp)), settings)
        started = time.perf_counter()
        stage.setup()
        figures: dict = {"model_id": stage.model_id, "load_s": time.perf_counter() - started}
        rtf = []
        single = []
        for name, (reference, uem) in files.items():
            seconds = len(decode_audio(paths[name])) / SAMPLE_RATE
            started = time.perf_counter()
            turns = stage.process(item(paths[name].name))
            rtf.append((time.perf_counter() - started) / seconds)
            found = len({t["speaker"] for t in turns})
            if reference is None:
                single.append(found)
                print(f"speakers {backend:<12} {name:<20} {found} (one voice)")
                continue
            hyp = [(t["start"], t["end"], t["speaker"]) for t in turns]
            der = diarization_error_rate(reference, hyp, collar_s=0.25, uem=uem)
            voices = len({who for _, _, who in reference})
            print(f"DER {backend:<12} {name:<20} {der:6.3f}  ({found} of {voices} speakers)")
            figures[f"der_{name}"] = round(der, 4)
            figures[f"speakers_{name}"] = f"{found}/{voices}"
        figures["single_voice_files_with_one_speaker"] = f"{single.count(1)}/{len(single)}"
        figures["rtf_median"] = round(statistics.median(rtf), 4)
        figures["load_s"] = round(figures["load_s"], 1)
        print(f"{backend}: load {figures['load_s']} s, real-time factor {figures['rtf_median']}")
        out[backend] = figures
    out["rtf_ratio_default_vs_resemblyzer"] = round(
        out["default"]["rtf_median"] / out["resemblyzer"]["rtf_median"], 2
    )
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
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["wer", "language", "diarisation"],
        default=["wer", "language", "diarisation"],
    )
    args = parser.parse_args()

    import jiwer

    from archive_pipeline.core.store import LocalStore
    from archive_pipeline.quality import normalise_text, speech_references
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.transcription import TranscribeStage, WhisperSettings

    speech = args.shared_media / "speech"
    refs = speech_references(speech)
    result: dict = {"benchmark": "speech_quality"}

    def item(name: str) -> CatalogItem:
        return CatalogItem(uri=name, store_key=name, media_id=name, sha256=name, duration_s=None)

    with tempfile.TemporaryDirectory(prefix="speech-quality-") as tmp:
        for model in args.models if "wer" in args.parts else ():
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
        if "language" in args.parts:
            result["language"] = language_accuracy(tmp_dir, item)
        if "diarisation" in args.parts:
            result["diarisation"] = diarisation(args, tmp_dir, item)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
