//! The server over HTTP, in-process on port 0, each story on SQLite and Postgres.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]
#![recursion_limit = "256"]

mod alerts;
mod auth;
mod budgets;
mod costs;
mod helpers;
mod hostile;
mod ingest;
mod lineage;
mod month;
mod otlp;
mod pages;
mod sql;

tollgate_store::backend_tests!(
    every_role_against_every_endpoint_family,
    bad_keys_are_all_the_same_401,
    gateway_keys_see_only_their_gateways,
    the_audit_log_records_api_and_cli_changes,
    the_openapi_document_describes_every_endpoint,
    months_close_through_the_api_and_reports_read_alike,
    reference_data_is_replaced_through_the_api_as_the_cli_does,
    budgets_are_checked_with_every_problem_named,
    a_budget_set_up_before_its_traffic_says_so_until_it_arrives,
    unpriced_tokens_say_what_to_import,
    budgets_move_as_batches_arrive_and_gateways_see_it,
    the_apim_fragment_blocks_an_exhausted_key,
    metrics_count_requests_by_route_and_show_budget_states,
    webhooks_are_retried_on_5xx_until_delivered,
    webhooks_refused_with_4xx_are_not_retried,
    pushes_are_idempotent_and_refuse_what_they_cannot_take,
    a_saturated_ingest_answers_503_with_retry_after,
    a_body_in_no_known_format_is_a_clear_4xx,
    shutdown_lets_a_push_in_flight_commit,
    a_gateway_watches_its_budgets_move_as_a_generated_month_arrives,
    analysts_query_the_graph_and_see_imports_arrive,
    openlineage_events_are_pushed_plain_gzipped_and_in_batches,
    analysts_run_bounded_read_only_sql,
    load_shedding_follows_the_ptu_saturation_to_the_gateways,
    alert_rules_are_checked_and_changed_through_the_api,
    alerts_reach_a_real_alertmanager,
    a_restart_judges_the_newest_hour_again_without_notifying_twice,
    metrics_pass_promtool_and_count_alerts,
    each_role_logs_in_and_sees_its_pages,
    sessions_forms_and_roles_are_guarded,
    a_large_graph_is_listed_in_part_and_drawn_around_its_focus,
    one_dated_line_cannot_break_the_books_or_lift_a_throttle,
    absurd_counts_are_refused_and_a_retry_gets_the_first_answer,
    spreadsheet_formulas_arrive_inert_in_every_csv,
    lineage_pushes_and_answers_stay_bounded,
    one_idempotency_key_commits_one_body,
    slow_clients_are_cut_and_shutdown_has_a_deadline,
    api_reads_with_a_session_are_not_stored_or_sniffed,
    a_push_that_expands_too_far_is_refused_and_frees_its_key,
    a_push_is_acknowledged_before_its_derived_work,
    a_crash_between_commit_and_derivation_is_caught_up_at_start,
    otlp_exports_land_as_spans_lineage_and_bypass_findings,
    hostile_otlp_bodies_are_clear_4xx_with_nothing_committed,
    a_cost_export_is_put_and_reconciled_to_the_hand_checked_numbers,
    cost_imports_are_finops_work_and_refuse_what_is_no_cost_export,
    the_finops_page_shows_the_invoice_once_a_cost_export_is_imported,
);

use alerts::*;
use auth::*;
use budgets::*;
use costs::*;
use hostile::*;
use ingest::*;
use lineage::*;
use month::*;
use otlp::*;
use pages::*;
use sql::*;
