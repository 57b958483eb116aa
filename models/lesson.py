"""Lessons shared with `/teach #tag <lesson>`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base


class Lesson(Base):
    __tablename__ = "lessons"
    __table_args__ = (
        UniqueConstraint("team_id", "channel_id", "message_ts"),
        UniqueConstraint("team_id", "request_key"),
        Index("ix_lessons_team_channel_created", "team_id", "channel_id", "created_at"),
        Index("ix_lessons_team_author", "team_id", "author_id"),  # one person's lessons (0005)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    channel_private: Mapped[bool] = mapped_column(default=True)
    author_id: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    message_ts: Mapped[str | None] = mapped_column(String(32))
    request_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]

    tags: Mapped[list[LessonTag]] = relationship(
        back_populates="lesson", cascade="all, delete-orphan", order_by="LessonTag.position", lazy="selectin"
    )

    @property
    def tag_names(self) -> list[str]:
        return [tag.tag for tag in self.tags]


class LessonTag(Base):
    __tablename__ = "lesson_tags"
    __table_args__ = (Index("ix_lesson_tags_team_tag", "team_id", "tag"),)

    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(default=0)

    lesson: Mapped[Lesson] = relationship(back_populates="tags")
