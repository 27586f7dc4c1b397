"""The training run's outcome as the DAG run's note, in the grid at a glance.

A task cannot write its run's note in Airflow 3 (the Task SDK's execution API only reads it; the
public REST API needs a user's token), so this listener does it where the run's state is decided:
when a ``<model>_training`` run succeeds or fails, it copies the note its ``record_outcome`` task
returned onto the run. A note a person already wrote is kept.
"""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

OUTCOME_TASK = "record_outcome"


def _write_note(session: Any, dag_id: str, run_id: str) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one_or_none()
    if run is None or run.note:
        return
    row = session.scalars(
        XComModel.get_many(run_id=run_id, key="return_value", dag_ids=dag_id, task_ids=OUTCOME_TASK)
    ).first()
    value = XComModel.deserialize_value(row) if row is not None else None
    if isinstance(value, dict) and value.get("note"):
        run.note = str(value["note"])


def _note_from_outcome(dag_run: Any) -> None:
    """In the scheduler the run is bound to the scheduling loop's session: the note joins its
    transaction (a second session would wait on the loop's own row locks). ``airflow dags test``
    hands over a detached run: the note gets a session of its own."""
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is not None:
        _write_note(session, dag_run.dag_id, dag_run.run_id)
        return
    from airflow.utils.session import create_session

    with create_session() as own:
        _write_note(own, dag_run.dag_id, dag_run.run_id)


class _OutcomeNote:
    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        _note_from_outcome(dag_run)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        _note_from_outcome(dag_run)


class RunOutcomeNotePlugin(AirflowPlugin):
    name = "run_outcome_note"
    listeners = [_OutcomeNote()]
