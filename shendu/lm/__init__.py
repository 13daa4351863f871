"""Language models: generative pre-training and fine-tuning (Concept: N4, N5.3).

``pretrain`` trains a GPT or CharRNN by next-token prediction on raw text (self-supervised);
``save_pretrained`` / ``load_pretrained`` keep the weights with their vocabulary;
``SequenceClassifier`` puts a new head on a pre-trained body and ``finetune`` trains it with
the body frozen or at a lower learning rate; ``speakers`` holds the demonstration task (which
tiny-Shakespeare character speaks a line) and ``finetune_demo`` runs it end to end.
"""
from shendu.lm.finetune import (SequenceClassifier, body_parameters, finetune,
                                finetune_param_groups, freeze_)
from shendu.lm.pretrain import (LMConfig, build_model, lm_loss, load_pretrained, model_spec,
                                pretrain, sample_text, save_pretrained)
from shendu.lm.speakers import SpeakerTask, finetune_demo, speaker_lines, speaker_task

__all__ = ["LMConfig", "SequenceClassifier", "SpeakerTask", "body_parameters", "build_model",
           "finetune", "finetune_demo", "finetune_param_groups", "freeze_", "lm_loss",
           "load_pretrained", "model_spec", "pretrain", "sample_text", "save_pretrained",
           "speaker_lines", "speaker_task"]
