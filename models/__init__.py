"""SQLAlchemy 2.0 typed models, one module per aggregate, and the Store that owns the engine."""

from models.base import Base
from models.capture import QuestionSource, SavedMessage, SavedThread
from models.digest import DigestRun, DigestSubscription
from models.evidence import PersonEvidence, TagEvidence
from models.expert import Expertise, KnowledgeGap, Person, RouteRequest
from models.lesson import Lesson, LessonTag
from models.mentoring import MentorOffer, MentorPairing, MentorRequest
from models.onboarding import BuddyPairing, BuddyVolunteer, OnboardingSettings
from models.question import Answer, Question, QuestionTag, Vote
from models.sessions import LearningSession, SessionInvite, SessionPost, SessionSignup
from models.stats_rollup import QuestionStats  # and its stats_rollup table
from models.tag_stats import TagStat
from models.workspace import ProcessedEvent, Workspace
from models.workspace_settings import SettingsChange, WorkspaceSetting

__all__ = [
    "Answer",
    "Base",
    "BuddyPairing",
    "BuddyVolunteer",
    "DigestRun",
    "DigestSubscription",
    "Expertise",
    "KnowledgeGap",
    "LearningSession",
    "Lesson",
    "LessonTag",
    "MentorOffer",
    "MentorPairing",
    "MentorRequest",
    "OnboardingSettings",
    "Person",
    "PersonEvidence",
    "ProcessedEvent",
    "Question",
    "QuestionSource",
    "QuestionStats",
    "QuestionTag",
    "RouteRequest",
    "SavedMessage",
    "SavedThread",
    "SessionInvite",
    "SessionPost",
    "SessionSignup",
    "SettingsChange",
    "TagEvidence",
    "TagStat",
    "Vote",
    "Workspace",
    "WorkspaceSetting",
]
