/**
 * The CHW's follow-up task for an LTFU request (merge into your cht-conf tasks.js).
 *
 * cht-fhir-mediator creates an INTEROP_FOLLOW_UP record (JSON form, app_settings.json) for each
 * follow-up a health facility requests, with the FHIR Task id in fields.task_id. This task shows
 * it to the CHW of the patient; its action opens the interop_follow_up form, which CHT fills with
 * inputs.source = 'task' and inputs.source_id = the INTEROP_FOLLOW_UP record id; task_id is added
 * here. When the CHW submits it, CHT's outbound push sends the report to the mediator, which
 * completes (or fails) the FHIR Task.
 */
module.exports = [
  {
    name: 'interoperability.follow_up',
    icon: 'icon-follow-up',
    title: 'task.interoperability.follow_up.title',
    appliesTo: 'reports',
    appliesToType: ['INTEROP_FOLLOW_UP'],
    actions: [
      {
        type: 'report',
        form: 'interop_follow_up',
        modifyContent: function (content, contact, report) {
          content.task_id = report.fields && report.fields.task_id;
          content.reason = report.fields && report.fields.reason;
        },
      },
    ],
    events: [
      {
        id: 'interop-follow-up',
        start: 7,
        end: 7,
        dueDate: function (event, contact, report) {
          return Utils.addDate(new Date(report.reported_date), 7);
        },
      },
    ],
    // Done once a follow-up report answering this record exists.
    resolvedIf: function (contact, report) {
      return contact.reports.some(function (r) {
        return r.form === 'interop_follow_up' && r.fields && r.fields.inputs && r.fields.inputs.source_id === report._id;
      });
    },
  },
];
