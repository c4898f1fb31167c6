Feature: Validate nebula.yaml before it reaches a pull request
  As a data scientist or ML engineer
  I want `nebula validate` to check my platform file
  So that a mistake is caught on my machine, with the line to fix

  Scenario: A good configuration passes
    Given the repository's own nebula.yaml
    When I run "nebula validate"
    Then the exit code is 0
    And the output says "valid: 2 projects, 2 datasets, 3 models, 2 deployments, 2 environments"

  Scenario: A typo gets an error that points at the line and suggests the fix
    Given a nebula.yaml with:
      """
      projects:
        churn:
          datasets:
            customers: {format: csv, columns: {churned: boolean}}
          models:
            churn-lr:
              algorithm: logistic_regression
              dataset: customer
              target: churned
      """
    When I run "nebula validate"
    Then the exit code is 1
    And the error is NEB301 at line 8 column 18
    And the output says "unknown dataset or preprocessing step 'customer' in project 'churn'"
    And the output says "hint: did you mean 'customers'?"

  Scenario: A secret written as a literal is refused
    Given a nebula.yaml with:
      """
      connections:
        warehouse:
          type: postgresql
          host: db.internal
          database: analytics
          password: s3cr3t-passw0rd
      """
    When I run "nebula validate"
    Then the exit code is 1
    And the error is NEB204 at line 6 column 15
    And the output says "write password: {secret: NAME}"
    And the output does not say "s3cr3t-passw0rd" outside the code frame

  Scenario: Every error of a pass is reported at once
    Given a nebula.yaml with:
      """
      projects:
        churn:
          deployments:
            api: {model: m, replica: 2}
            web: {model: m, replicas: many}
      """
    When I run "nebula validate"
    Then the exit code is 1
    And the error is NEB201 at line 4 column 23
    And the error is NEB203 at line 5 column 33
